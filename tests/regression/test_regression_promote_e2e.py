"""Promotion of regression models end to end: real commits and `dvc repro` on
sklearn:diabetes, GTO tags pushed to a bare origin, prod rebuilt in a worktree and
compared on the paired bootstrap; the gate's regression rules decide."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import VENV_BIN, copy_template, edit_params, run

pytestmark = pytest.mark.slow

GATE = {
    "gate.baseline": {"mean": {"r2": 0.0}},
    "gate.min": {"rmse": 90.0},
    "gate.max_regression": {"r2": 0.02, "rmse": 1.0},
}
BUILDS: list[tuple[str, dict[str, Any]]] = [
    ("weak", {"train.model": "hist_gradient_boosting", "train.hist_gradient_boosting.max_iter": 2}),
    ("better", {"train.model": "random_forest"}),
    ("worse", {"train.model": "hist_gradient_boosting"}),  # still max_iter 2
]


def cli(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([str(VENV_BIN / "python"), "-m", "mlops_template", *args], project, check=check)


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("regression-registry")
    project = copy_template(root / "project")
    bare = root / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], root)
    run(["git", "remote", "add", "origin", str(bare)], project)
    edit_params(project, **{"data.source": "sklearn:diabetes", **GATE})
    found: dict[str, Any] = {}
    for name, changes in BUILDS:
        edit_params(project, **changes)
        run(["dvc", "repro", "--quiet"], project)
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", f"train: {name} model"], project)
        cli(project, "registry", "register", "--push")
        cli(project, "registry", "promote", "--push", check=False)
        found[name] = {
            "decision": json.loads((project / "reports/deploy/decision.json").read_text()),
            "card": (project / "reports/deploy/model_card.md").read_text(),
        }
    return found


def test_first_regression_model_is_promoted(history: dict[str, Any]) -> None:
    decision = history["weak"]["decision"]
    assert (decision["version"], decision["promoted"], decision["kind"]) == (
        "v0.1.0",
        True,
        "first",
    )
    card = history["weak"]["card"]
    assert "- Task: regression of `target` (a number per row)" in card
    assert "rmse" in card and "roc_auc" not in card


def test_a_better_regression_model_is_promoted(history: dict[str, Any]) -> None:
    decision = history["better"]["decision"]
    assert (decision["previous"], decision["promoted"]) == ("v0.1.0", True)
    rmse = decision["comparison"]["rmse"]
    assert rmse["verdict"] == "better" and rmse["ci"][1] < 0, rmse


def test_a_worse_regression_model_is_not_promoted(history: dict[str, Any]) -> None:
    decision = history["worse"]["decision"]
    assert (decision["version"], decision["previous"], decision["promoted"]) == (
        "v0.3.0",
        "v0.2.0",
        False,
    )
    assert decision["gate"]["passed"] is False
    assert any("gate.max_regression.rmse" in r for r in decision["gate"]["reasons"])
