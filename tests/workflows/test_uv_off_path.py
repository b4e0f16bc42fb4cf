"""A fresh machine has no uv on PATH (the Makefile bootstraps it into .tools/): the act
harness and its setup-uv stand-in must find that one, as `make` does. The PATH here has
no uv whatever the machine has, so the proof holds on a CI machine with uv installed."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from tests.helpers import path_without, run, uv_binary
from tests.workflows.act import World, make_repo, push_event

pytestmark = pytest.mark.slow

WORKFLOW = """\
name: uv
on: push
permissions: {}
jobs:
  uv:
    runs-on: ubuntu-latest
    timeout-minutes: 5
    steps:
      - uses: astral-sh/setup-uv@20cfd1bf945f4377ade1205e4dbc17946fc9a30d # v10.0.1
        with:
          python-version: "3.12"
      - name: Use uv
        run: echo "uv is $(command -v uv), $(uv --version), UV_PYTHON=$UV_PYTHON"
"""


def test_setup_uv_stand_in_finds_the_bootstrapped_uv_with_none_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", path_without("uv", tmp_path / "no-uv"))
    assert shutil.which("uv") is None
    version = run([uv_binary(), "--version"], tmp_path).stdout.split()[1]
    repo = make_repo(tmp_path / "repo")
    repo.commit("a job that needs uv", {".github/workflows/uv.yaml": WORKFLOW})
    result = World(tmp_path / "github").act(repo, "push", push_event(repo), "uv.yaml")
    assert result.succeeded, result
    assert re.search(rf"uv is \S+/setup-uv/bin/uv, uv {re.escape(version)}\b", result.output)
    assert "UV_PYTHON=3.12" in result.output
