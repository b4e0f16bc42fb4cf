"""`make init NAME=...` on a copy of the template leaves a working, renamed project."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.helpers import copy_template, link_venv, run, tracked_files, uv_binary

pytestmark = pytest.mark.slow


def _mentions(root: Path, pattern: re.Pattern[str]) -> list[str]:
    hits = []
    for rel in tracked_files(root):
        if re.search(r"(^|/)CHANGELOG", rel):
            continue
        try:
            text = (root / rel).read_text()
        except UnicodeDecodeError:
            continue
        hits += [
            f"{rel}:{n}" for n, line in enumerate(text.splitlines(), 1) if pattern.search(line)
        ]
    return hits


def test_init_renames_everything_and_the_project_still_works(
    tmp_path: Path, dvc_cache: Path
) -> None:
    project = copy_template(tmp_path / "fork", dvc_cache=dvc_cache)
    assert (project / "examples").exists()

    # The copy borrows this run's environment; `-o .venv/.synced` keeps make from
    # re-syncing it (that would re-point the shared editable install at the copy).
    link_venv(project)
    run(["make", "-o", ".venv/.synced", "init", "NAME=churn_model", f"UV={uv_binary()}"], project)
    (project / ".venv").unlink()

    assert (project / "src/churn_model/__main__.py").exists()
    assert not (project / "src/mlops_template").exists()
    assert not (project / "examples").exists()
    assert _mentions(project, re.compile(r"\bmlops[_-]template\b")) == []
    assert "python -m churn_model ingest" in (project / "dvc.yaml").read_text()
    assert 'name = "churn-model"' in (project / "pyproject.toml").read_text()

    env = {"PYTHONPATH": str(project / "src")}
    # the renamed pipeline runs end to end, and a fast subset of its own tests passes
    run(["dvc", "repro"], project, **env)
    assert (project / "eval/metrics.json").exists()
    out = run(
        [
            "python",
            "-m",
            "pytest",
            "-q",
            "-m",
            "not slow",
            "-p",
            "no:cacheprovider",
            "tests/unit/test_template.py",
            "tests/unit/test_config.py",
        ],
        project,
        **env,
    )
    assert re.search(r"\d+ passed", out.stdout)

    # idempotent: a second init changes nothing
    before = {rel: (project / rel).read_bytes() for rel in tracked_files(project)}
    run(["python", "-m", "churn_model", "init", "churn_model"], project, **env)
    assert {rel: (project / rel).read_bytes() for rel in tracked_files(project)} == before


def test_init_refuses_an_invalid_identifier(tmp_path: Path) -> None:
    project = copy_template(tmp_path / "fork")
    result = run(["python", "-m", "mlops_template", "init", "my-project"], project, check=False)
    assert result.returncode == 2
    assert "'my-project' is not a valid Python identifier" in result.stderr
    assert (project / "src/mlops_template/__main__.py").exists()
