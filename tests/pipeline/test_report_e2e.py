"""`report --base REF` end to end in a temporary git repo: the base is rebuilt in a
worktree sharing the DVC cache, both models are scored, the report, images and gate.json
are written, and the exit code follows the gate (0 pass/warn, 1 enforced failure, 2 user
error). Real git, DVC and the real command; no stubs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from tests.helpers import copy_template, edit_params, run
from tests.pipeline.pr_report import branch_from, commit_all, outputs, report

pytestmark = pytest.mark.slow

RUN_ENV = {
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "octo/repo",
    "GITHUB_RUN_ID": "77",
}


def assert_worktrees_cleaned(project: Path) -> None:
    listed = run(["git", "worktree", "list", "--porcelain"], project).stdout
    assert listed.count("worktree ") == 1, listed
    leftovers = project / ".dvc" / "tmp" / "worktrees"
    assert not leftovers.exists() or not any(leftovers.iterdir())


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, dvc_cache: Path) -> dict:
    """A project whose `main` commit is reproduced (its lock committed): the base."""
    project = copy_template(tmp_path_factory.mktemp("pr") / "project", dvc_cache=dvc_cache)
    run(["dvc", "repro"], project)
    base = commit_all(project, "base: pipeline reproduced")
    metrics = json.loads((project / "eval" / "metrics.json").read_text())
    return {"project": project, "base": base, "metrics": metrics}


def test_params_change_is_reported_against_the_rebuilt_base(repo: dict) -> None:
    project, base = repo["project"], repo["base"]
    branch_from(project, "more-trees", base)
    edit_params(project, **{"train.random_forest.n_estimators": 51})
    run(["dvc", "repro"], project)
    commit_all(project, "PR: more trees")

    result = report(project, base, **RUN_ENV)
    assert result.returncode == 0, result.stderr
    markdown, gate, summary = outputs(project)

    assert gate == {"passed": True, "mode": "enforce", "reasons": []}
    first = markdown.splitlines()[0]
    assert first.startswith("✅ **Model check passed**") and "1 param changed" in first
    assert "| metric | base | PR | Δ (PR − base) | 95% CI of Δ | verdict |" in markdown
    assert "| `train.random_forest.n_estimators` | `100` | `51` |" in markdown
    assert "### Data: unchanged" in markdown
    assert "[workflow run](https://github.com/octo/repo/actions/runs/77)" in markdown
    for image in ("roc.png", "precision_recall.png", "confusion_matrix.png"):
        assert f"]({image})" in markdown
        assert (project / "reports" / "pr" / image).read_bytes().startswith(b"\x89PNG")
    # the base came from the DVC cache (it was built before), not from any workspace file
    stages = len(yaml.safe_load((project / "dvc.yaml").read_text())["stages"])
    assert f"{stages} stages restored from the DVC cache, 0 run" in markdown
    assert summary["base_available"] and summary["params_changed"] == [
        "train.random_forest.n_estimators"
    ]
    # ONNX-scored base on the same test rows = the base's own evaluate stage (sklearn)
    for name in ("roc_auc", "balanced_accuracy", "accuracy"):
        assert summary["metrics"][name]["base"] == pytest.approx(repo["metrics"][name], abs=2e-3)
    pr_metrics = json.loads((project / "eval" / "metrics.json").read_text())
    assert summary["metrics"]["roc_auc"]["pr"] == pytest.approx(pr_metrics["roc_auc"], abs=2e-3)
    assert_worktrees_cleaned(project)


def test_crippled_pr_fails_the_enforced_gate_and_warn_mode_does_not_block(repo: dict) -> None:
    project, base = repo["project"], repo["base"]
    branch_from(project, "crippled", base)
    edit_params(
        project,
        **{"train.random_forest.max_depth": 1, "train.random_forest.n_estimators": 1},
    )
    run(["dvc", "repro"], project)
    commit_all(project, "PR: a crippled forest")

    result = report(project, base)
    assert result.returncode == 1, result.stderr
    markdown, gate, _ = outputs(project)
    assert gate["passed"] is False and gate["mode"] == "enforce"
    assert any(r.startswith("gate.max_regression.roc_auc:") for r in gate["reasons"])
    assert markdown.splitlines()[0].startswith("❌ **Model check failed** (gate enforced)")
    assert "| `gate.max_regression.roc_auc` | **FAIL** |" in markdown
    assert "🔴 worse" in markdown
    assert "gate.max_regression.roc_auc" in result.stderr

    # gate.mode is not a pipeline param: switching to warn needs no repro
    edit_params(project, **{"gate.mode": "warn"})
    warned = report(project, base)
    assert warned.returncode == 0, warned.stderr
    markdown, gate, _ = outputs(project)
    assert gate["passed"] is False and gate["mode"] == "warn" and gate["reasons"]
    assert markdown.splitlines()[0].startswith("⚠️")
    run(["git", "checkout", "-q", "--", "params.yaml"], project)


def test_base_without_a_pipeline_is_a_first_model(repo: dict) -> None:
    project, base = repo["project"], repo["base"]
    branch_from(project, "first", base)
    empty_tree = run(["git", "mktree"], project).stdout.strip()
    orphan = run(["git", "commit-tree", empty_tree, "-m", "before the pipeline"], project)
    result = report(project, orphan.stdout.strip())
    assert result.returncode == 0, result.stderr
    markdown, gate, summary = outputs(project)
    assert gate == {"passed": True, "mode": "enforce", "reasons": []}
    assert not summary["base_available"] and "has no dvc.yaml" in summary["base_note"]
    assert "no comparison" in markdown.splitlines()[0]
    assert "only the minimums apply" in markdown and "**Base**" not in markdown
    assert_worktrees_cleaned(project)


def test_user_errors_exit_2(repo: dict) -> None:
    project, base = repo["project"], repo["base"]
    branch_from(project, "errors", base)
    bad = report(project, "no-such-ref")
    assert bad.returncode == 2 and "'no-such-ref'" in bad.stderr
    option = report(project, "--help")
    assert option.returncode == 2
    edit_params(project, **{"train.random_forest.n_estimators": 7})  # no repro: stale outputs
    stale = report(project, base)
    assert stale.returncode == 2 and "stale" in stale.stderr
    run(["git", "checkout", "-q", "--", "params.yaml"], project)


def test_base_is_rebuilt_with_its_own_code_when_never_built(repo: dict) -> None:
    """A base whose code differs (here: it ingests 500 rows) and that was never built is
    reproduced in the worktree with ITS code, not the PR's."""
    project, base = repo["project"], repo["base"]
    branch_from(project, "old-ingest", base)
    data_py = project / "src" / "mlops_template" / "data.py"
    assert "\ndef load_source(" in data_py.read_text()
    with data_py.open("a") as code:  # this base's ingest keeps the first 500 rows
        code.write(
            "\n\n_load_all = load_source\n\n\n"
            "def load_source(params, root=Path()):  # noqa: F811\n"
            "    return _load_all(params, root).iloc[:500]\n"
        )
    old = commit_all(project, "a base with another ingest")
    branch_from(project, "pr", base)
    run(["dvc", "repro"], project)  # the PR = the template: restored from the cache

    result = report(project, old)
    assert result.returncode in (0, 1), result.stderr
    markdown, _, summary = outputs(project)
    assert "| rows | 500 | 569 |" in markdown and "### Data: changed" in markdown
    assert summary["base_available"]
    assert ", 0 run)" not in markdown  # stages executed in the worktree
    assert_worktrees_cleaned(project)
