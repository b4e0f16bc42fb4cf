"""`sweep run` / `sweep apply` through DVC's real experiment queue (celery worker, temp
copies of the repository), in a throw-away copy of the template on its fixtures. Small
on purpose: a random forest of a few trees, one importance repeat, two trials."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import edit_params, run

pytestmark = pytest.mark.slow

KEY = "train.random_forest.n_estimators"
VALUES = [4, 40]


def _recorded(project: Path) -> dict[str, tuple[Any, dict[str, float], str]]:
    """name -> (swept value, eval/metrics.json values, executor state), read straight from
    `dvc exp show --json` (not through mlops_template.sweep)."""
    shown = json.loads(run(["dvc", "exp", "show", "--json"], project).stdout)
    commit = next(entry for entry in shown if entry["rev"] != "workspace")
    found = {}
    for experiment in commit["experiments"] or []:
        data = experiment["revs"][0]["data"]
        value = data["params"]["params.yaml"]["data"]["train"]["random_forest"]["n_estimators"]
        metrics = data["metrics"]["eval/metrics.json"]["data"]
        found[experiment["name"]] = (value, metrics, (experiment["executor"] or {}).get("state"))
    return found


def _table(text: str) -> list[list[str]]:
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_sweep_ranks_what_dvc_recorded_and_apply_leaves_the_best(fresh_project: Path) -> None:
    project = fresh_project
    edit_params(project, **{KEY: 10, "evaluate.importance_repeats": 1})
    run(["dvc", "repro", "--quiet"], project)
    run(["git", "add", "params.yaml", "dvc.lock"], project)
    run(["git", "commit", "-qm", "small model"], project)

    # the sweep section reruns nothing: no stage depends on it
    edit_params(project, sweep={"method": "grid", "metric": "roc_auc", "space": {KEY: VALUES}})
    assert run(["dvc", "status", "--quiet"], project, check=False).returncode == 0
    run(["git", "commit", "-qam", "sweep section"], project)

    started = time.monotonic()
    done = run(["python", "-m", "mlops_template", "sweep", "run"], project, timeout=1200)
    elapsed = time.monotonic() - started
    progress = [line for line in done.stderr.splitlines() if " trial " in line]
    print(f"sweep run, {len(VALUES)} trials: {elapsed:.1f}s", *progress, sep="\n")  # -rA
    assert "trial 2/2 sweep-2 finished" in done.stderr, done.stderr

    recorded = _recorded(project)
    assert {name: value for name, (value, _, _) in recorded.items()} == {
        "sweep-1": VALUES[0],
        "sweep-2": VALUES[1],
    }
    assert {state for _, _, state in recorded.values()} == {"success"}
    order = sorted(recorded, key=lambda name: -recorded[name][1]["roc_auc"])

    rows = _table(done.stdout)
    header, body = rows[0], rows[1:]
    assert header[:4] == ["rank", "experiment", "state", KEY]
    assert [cells[1] for cells in body] == order
    assert [cells[0] for cells in body] == ["1", "2"]
    for cells in body:
        value, metrics, _ = recorded[cells[1]]
        assert cells[3] == str(value)
        assert cells[header.index("roc_auc ↑")] == f"{metrics['roc_auc']:.4f}"
    assert (project / "reports/sweep.md").read_text().count("| sweep-") == 2

    shown_again = run(["python", "-m", "mlops_template", "sweep", "show"], project)
    assert _table(shown_again.stdout) == rows

    applied = run(["python", "-m", "mlops_template", "sweep", "apply"], project)
    assert f"applied {order[0]}" in applied.stderr
    params = yaml.safe_load((project / "params.yaml").read_text())
    assert params["train"]["random_forest"]["n_estimators"] == recorded[order[0]][0]
    assert params["sweep"]["space"] == {KEY: VALUES}  # the rest of the file is kept
    assert run(["dvc", "status", "--quiet"], project, check=False).returncode == 0
    metrics = json.loads((project / "eval/metrics.json").read_text())
    assert metrics["roc_auc"] == recorded[order[0]][1]["roc_auc"]
    changed = run(["git", "status", "--porcelain"], project).stdout.split()
    assert "params.yaml" in changed and "dvc.lock" in changed


def test_apply_refuses_an_unknown_experiment_and_changes_nothing(fresh_project: Path) -> None:
    edit_params(fresh_project, sweep={"space": {KEY: VALUES}})
    run(["git", "commit", "-qam", "sweep section"], fresh_project)
    before = (fresh_project / "params.yaml").read_text()
    done = run(
        ["python", "-m", "mlops_template", "sweep", "apply", "sweep-9"], fresh_project, check=False
    )
    assert done.returncode == 2
    assert "no sweep experiments (sweep-<n>) on this commit" in done.stderr
    assert (fresh_project / "params.yaml").read_text() == before
