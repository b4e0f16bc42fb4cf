"""The project's own checks (tests/project/): unlike the template's tests, which run on
fixtures (tests/fixtures/), these run on this project's current params.yaml and data, on
a copy reproduced once per session. They are what a fork's edit of params.yaml or
data/external/ must keep green: its params valid, its pipeline reproducing, its model
passing its own gate, its API answering rows of its own schema."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.helpers import copy_template, run


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.project)
            item.add_marker(pytest.mark.slow)


@dataclass(frozen=True)
class ProjectBuild:
    root: Path  # a copy of the project (params.yaml and data/external/ as they are)
    repro: subprocess.CompletedProcess[str]  # its `dvc repro`

    def require(self) -> Path:
        """The reproduced copy; fails (naming the cause) when `dvc repro` did not pass."""
        if self.repro.returncode != 0:
            pytest.fail(
                "the project's pipeline did not reproduce (`dvc repro` exited "
                f"{self.repro.returncode}):\n{self.repro.stdout[-4000:]}\n{self.repro.stderr[-4000:]}"
            )
        return self.root


@pytest.fixture(scope="session")
def project_build(tmp_path_factory: pytest.TempPathFactory, dvc_cache: Path) -> ProjectBuild:
    root = copy_template(
        tmp_path_factory.mktemp("this-project") / "project", dvc_cache=dvc_cache, as_project=True
    )
    return ProjectBuild(root, run(["dvc", "repro"], root, check=False, timeout=3600))
