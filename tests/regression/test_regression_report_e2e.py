"""`report --base REF` end to end on a regression project (sklearn:diabetes) in a
temporary git repo: the base is rebuilt in a worktree, both models are scored on the
PR's test rows with the paired bootstrap, and the exit code follows the gate. Better,
no change and worse, with the real command; no stubs."""

from __future__ import annotations

import pytest
from tests.helpers import copy_template, edit_params, run
from tests.pipeline.pr_report import branch_from, commit_all, outputs, report

pytestmark = pytest.mark.slow

WEAK = {"train.model": "hist_gradient_boosting", "train.hist_gradient_boosting.max_iter": 2}
GATE = {
    "gate.baseline": {"mean": {"r2": 0.0}},
    "gate.min": {},
    "gate.max_regression": {"r2": 0.02, "rmse": 1.0},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """main: a weak regression model on diabetes (reproduced, lock committed); strong:
    the fixtures' random forest, committed on a branch."""
    project = copy_template(tmp_path_factory.mktemp("regression-pr") / "project")
    edit_params(project, **{"data.source": "sklearn:diabetes", **GATE, **WEAK})
    run(["dvc", "repro"], project)
    weak = commit_all(project, "weak model")
    branch_from(project, "strong", weak)
    edit_params(project, **{"train.model": "random_forest"})
    run(["dvc", "repro"], project)
    strong = commit_all(project, "strong model")
    return {"project": project, "weak": weak, "strong": strong}


def test_a_better_model_passes(repo: dict) -> None:
    project = repo["project"]
    branch_from(project, "strong", repo["strong"])
    result = report(project, repo["weak"])
    assert result.returncode == 0, result.stdout + result.stderr
    markdown, gate, summary = outputs(project)
    assert gate["passed"] is True
    assert {m: v["verdict"] for m, v in summary["metrics"].items()} == {
        "rmse": "better",
        "mae": "better",
        "r2": "better",
        "mape": "better",
    }
    assert summary["metrics"]["rmse"]["delta"] < 0 < summary["metrics"]["r2"]["delta"]
    assert markdown.splitlines()[0].startswith("✅ **Model check passed**")
    assert (project / "reports/pr/predicted_vs_actual.png").is_file()
    assert (project / "reports/pr/residuals.png").is_file()


def test_no_model_change_is_no_significant_change(repo: dict) -> None:
    project = repo["project"]
    branch_from(project, "importance", repo["strong"])
    edit_params(project, **{"evaluate.importance_repeats": 3})  # the model is untouched
    run(["dvc", "repro"], project)
    commit_all(project, "fewer importance repeats")
    result = report(project, repo["strong"])
    assert result.returncode == 0, result.stdout + result.stderr
    _, gate, summary = outputs(project)
    assert gate["passed"] is True
    for values in summary["metrics"].values():
        assert values["delta"] == 0 and values["verdict"] == "no significant change"


def test_a_degraded_model_fails_the_gate(repo: dict) -> None:
    project = repo["project"]
    branch_from(project, "degrade", repo["strong"])
    edit_params(project, **WEAK)
    run(["dvc", "repro"], project)
    commit_all(project, "degrade")
    result = report(project, repo["strong"])
    assert result.returncode == 1, result.stdout + result.stderr
    markdown, gate, summary = outputs(project)
    assert gate["passed"] is False
    assert any(r.startswith("gate.max_regression.rmse: rmse rose from") for r in gate["reasons"])
    assert any(r.startswith("gate.max_regression.r2: r2 dropped from") for r in gate["reasons"])
    assert summary["metrics"]["rmse"]["verdict"] == "worse"
    assert markdown.splitlines()[0].startswith("❌ **Model check failed** (gate enforced)")
