"""monitor.yaml under act (drift -> one issue + a retraining PR; no drift -> nothing
posted; the daily schedule reads the MONITOR_SOURCE secret, a sqlite:////ABSOLUTE URL of a
prediction log, for the last 24h, and its delayed labels: live performance dropped -> a
`performance` issue and a retraining PR of the labelled predictions), and the `monitor
issue` / `monitor pr` commands against the harness's fake `gh` and `cml` recorder.

The act runs use a throw-away copy of the template whose committed DVC config points at
the session's shared DVC cache, so `make repro` restores what earlier runs built.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.helpers import VENV_BIN, run
from tests.workflows.act import (
    FAKE_BIN,
    ActResult,
    GitRepo,
    World,
    make_repo,
    retarget_repo,
    webhook_example,
)
from tests.workflows.act import (
    dispatch_event as act_dispatch_event,
)
from tests.workflows.downloads import RECORDER

from mlops_template.data import load_builtin
from mlops_template.performance import store_labels
from mlops_template.predlog import PredictionLogger
from mlops_template.registry import registration_message

REPO = "acme/mlops-demo"
DRIFTED = "data/monitoring/drifted.parquet"
FRESH = "data/monitoring/fresh.parquet"
LABELLED = "data/monitoring/labelled.csv"
CML_BIN = RECORDER.parent
CRON = "17 5 * * *"
LOGGED_RECENT = 250  # drifted rows an hour old: inside the scheduled 24h window
LOGGED_OLD = 300  # undrifted rows two days old: outside it
RECENT_VERSION = "v1.0.0"  # registered (a tag with its test-set metrics) in the repo
FLIPPED = 100  # of the recent rows' delayed labels, the other class: the world changed
ISSUE_STEP = "Open or update the drift issue"
PERFORMANCE_ISSUE_STEP = "Open or update the performance issue"
RETRAIN_STEP = "Add the labelled data, retrain and open a pull request"


def _batches() -> dict[str, pd.DataFrame]:
    data = load_builtin("breast_cancer")
    features = data.drop(columns=["target"])
    drifted = features.copy()
    drifted["mean_texture"] += 2 * features["mean_texture"].std()
    rng = np.random.default_rng(0)
    labelled = data.sample(60, random_state=1).reset_index(drop=True)
    numeric = labelled.columns.drop("target")
    labelled[numeric] = labelled[numeric] * rng.uniform(0.99, 1.01, size=(60, len(numeric)))
    return {DRIFTED: drifted, FRESH: features, LABELLED: labelled}


def dispatch_event(repo: GitRepo, **inputs: str) -> dict[str, Any]:
    return act_dispatch_event(repo, "monitor.yaml", **inputs)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    world = World(tmp_path_factory.mktemp("github"))
    issues = world.store / "api" / "repos" / REPO / "issues.json"
    issues.parent.mkdir(parents=True, exist_ok=True)
    issues.write_text("[]")  # no open drift issue yet
    return world


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, dvc_cache: Path) -> GitRepo:
    repo = make_repo(tmp_path_factory.mktemp("repo") / "mlops-demo", REPO)
    run(["dvc", "cache", "dir", str(dvc_cache)], repo.path)  # committed: act copies it
    for rel, frame in _batches().items():
        target = repo.path / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".csv"):
            frame.to_csv(target, index=False)
        else:
            frame.to_parquet(target, index=False)
    repo.commit("monitoring data and the shared DVC cache")
    # the version the recent predictions came from, registered with its test-set metrics
    message = registration_message(
        "model", RECENT_VERSION, {"roc_auc": 0.99, "balanced_accuracy": 0.96}, {}, None
    )
    repo.git("tag", "-a", f"model@{RECENT_VERSION}", "-m", message)
    # act reads secrets from ./.secrets and job environment from ./.env (both kept out of
    # git, so out of the checkout). Hard links instead of copies from uv's cache make the
    # job's `uv sync` cheaper; what gets installed is the same.
    (repo.path / ".secrets").write_text("REPO_TOKEN=test-repo-token\n")
    (repo.path / ".env").write_text("UV_LINK_MODE=hardlink\n")
    (repo.path / ".git" / "info" / "exclude").write_text(".secrets\n.env\n")
    return repo


def schedule_event(repo: GitRepo) -> dict[str, Any]:
    """What GitHub sends a scheduled run: the cron line and the repository, no inputs."""
    payload = webhook_example("workflow_dispatch")
    return {
        "schedule": CRON,
        "repository": retarget_repo(payload["repository"], repo.full_name),
        "workflow": ".github/workflows/monitor.yaml",
    }


@pytest.fixture(scope="module")
def prediction_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log as the serving API writes it: LOGGED_OLD rows of the training data two days
    ago (model v0), then LOGGED_RECENT drifted rows an hour ago (model v1.0.0), and the
    recent rows' delayed labels (`monitor labels` stores them in the log): FLIPPED of
    them are the other class than the model answered."""
    data = load_builtin("breast_cancer")
    drifted = _batches()[DRIFTED]
    classes = sorted(data["target"].astype(str).unique())
    path = tmp_path_factory.mktemp("predlog") / "predictions.sqlite"
    logger = PredictionLogger(path, classes=classes)
    now = time.time()
    for rows, version, age in (
        (data.drop(columns=["target"]).head(LOGGED_OLD), "v0", timedelta(days=2)),
        (drifted.tail(LOGGED_RECENT), RECENT_VERSION, timedelta(hours=1)),
    ):
        labels = data.loc[rows.index, "target"].astype(str).tolist()
        probabilities = [[0.9 if c == label else 0.1 for c in classes] for label in labels]
        queued = logger.log(
            rows.to_dict("records"),
            labels,
            probabilities,
            version,
            f"req-{version}",
            timestamp=now - age.total_seconds(),
        )
        assert queued
    logger.close()
    assert logger.stats().written == LOGGED_OLD + LOGGED_RECENT, logger.stats()
    answered = data.loc[drifted.tail(LOGGED_RECENT).index, "target"].astype(str).to_numpy()
    other = np.where(answered == classes[0], classes[1], classes[0])
    truth = np.r_[other[:FLIPPED], answered[FLIPPED:]]
    labels = pd.DataFrame(
        {"request_id": f"req-{RECENT_VERSION}", "row": range(LOGGED_RECENT), "label": truth}
    )
    assert store_labels(path, labels).new == LOGGED_RECENT
    return path


def gh_calls(world: World) -> list[list[str]]:
    log = world.store / "api" / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def no_drift_run(world: World, repo: GitRepo) -> ActResult:
    return world.act(
        repo,
        "workflow_dispatch",
        dispatch_event(repo, source=FRESH, feedback=LABELLED),
        "monitor.yaml",
    )


@pytest.fixture(scope="module")
def drift_run(
    world: World, repo: GitRepo, no_drift_run: ActResult
) -> tuple[ActResult, list[list[str]]]:
    before = len(gh_calls(world))
    result = world.act(
        repo,
        "workflow_dispatch",
        dispatch_event(repo, source=DRIFTED, feedback=LABELLED),
        "monitor.yaml",
    )
    return result, gh_calls(world)[before:]


@pytest.fixture(scope="module")
def scheduled_run(
    world: World, repo: GitRepo, prediction_log: Path
) -> tuple[ActResult, str, list[list[str]]]:
    """The daily run: no inputs, MONITOR_SOURCE a database URL of the prediction log."""
    source = f"sqlite:///{prediction_log}"  # sqlite:////ABSOLUTE/path
    before = len(gh_calls(world))
    result = world.act(
        repo, "schedule", schedule_event(repo), "monitor.yaml", secrets={"MONITOR_SOURCE": source}
    )
    return result, source, gh_calls(world)[before:]


@pytest.mark.slow
def test_no_drift_posts_nothing(world: World, no_drift_run: ActResult) -> None:
    result = no_drift_run
    assert result.succeeded, result
    report = json.loads((result.artifact("drift-report") / "drift.json").read_text())
    assert report["status"] == "ok" and report["drift"] is False, report["reasons"]
    assert report["rows"]["current"] == 569
    assert report["predictions"], "the model's outputs were compared too"
    assert not result.step_ran(ISSUE_STEP) and not result.step_ran(RETRAIN_STEP)
    assert gh_calls(world) == []
    assert result.cml_calls() == []


@pytest.mark.slow
def test_drift_opens_one_issue_with_the_report_and_a_retraining_pr(
    drift_run: tuple[ActResult, list[list[str]]],
) -> None:
    result, calls = drift_run
    assert result.succeeded, result
    artifact = result.artifact("drift-report")
    report = json.loads((artifact / "drift.json").read_text())
    assert report["status"] == "drift"
    assert report["drifted_features"][0] == "mean_texture"
    assert report["features"][0]["name"] == "mean_texture"
    assert list((artifact / "plots").glob("mean_texture.png"))

    # The issue: label ensured, open drift issues listed (none), one issue created whose
    # body is the report (without images) and links the run.
    posts = [c for c in calls if "POST" in c]
    assert [c[1] for c in calls] == [
        f"repos/{REPO}/labels",
        f"repos/{REPO}/issues",
        f"repos/{REPO}/issues",
    ]
    assert "labels=drift" in calls[1] and "state=open" in calls[1]
    (create,) = [c for c in posts if c[1] == f"repos/{REPO}/issues"]
    fields = dict(a.split("=", 1) for a in create if "=" in a and not a.startswith("-"))
    assert fields["labels[]"] == "drift" and fields["title"] == "Data drift detected"
    body = fields["body"]
    assert (artifact / "summary.md").read_text() in body
    assert body.count("mean_texture") >= 2 and "![" not in body
    assert f"https://github.com/{REPO}/actions/runs/{result.run_id}" in body

    # The retraining PR: appended, retrained on more rows, then exactly one cml call.
    assert result.step_succeeded(RETRAIN_STEP), result
    assert "appended 60 labelled row(s)" in result.output
    assert "feedback: 60 new labelled rows from 1 batch(es)" in result.output
    for stage in ("ingest", "split", "train"):
        assert f"Running stage '{stage}'" in result.output.split("appended 60")[1], result
    (call,) = result.cml_calls()
    assert call["command"] == "pr create"
    assert call["token"] is True
    positional = [a for a in call["args"][2:] if not a.startswith("--")]
    assert positional == ["data/external/feedback", "dvc.lock"]
    assert call["repo"] == f"https://github.com/{REPO}" == call["flags"]["repo"]
    # Run in a clone holding exactly the new feedback and the retrained lock file.
    feedback, lock = sorted(call["changed"])
    assert feedback.startswith("data/external/feedback/") and lock == "dvc.lock"
    assert call["flags"]["title"].startswith("Retrain on labelled feedback")
    assert call["flags"]["branch"].startswith("retrain/feedback-")
    assert "'mean_texture' drifted" in call["flags"]["body"]
    assert "md" in call["flags"] and "squash" not in call["flags"]  # a person merges it


@pytest.mark.slow
def test_scheduled_run_reads_the_log_url_secret_for_24h_and_opens_the_issue(
    scheduled_run: tuple[ActResult, str, list[list[str]]],
) -> None:
    result, source, calls = scheduled_run
    assert result.succeeded, result
    report = json.loads((result.artifact("drift-report") / "drift.json").read_text())

    # The MONITOR_SOURCE secret (no `source` input on a schedule), read as a prediction log
    # for `inputs.last || '24h'`: only the recent rows, none of the two-day-old ones.
    assert report["source"] == source and source.startswith("sqlite:////")
    assert report["rows"]["current"] == LOGGED_RECENT
    assert report["model_versions"] == {RECENT_VERSION: LOGGED_RECENT}
    window = report["window"]
    assert window["until"] is None and window["model_version"] is None
    span = datetime.fromisoformat(report["created_at"]) - datetime.fromisoformat(window["since"])
    assert timedelta(hours=24) <= span < timedelta(hours=24, minutes=10), window
    assert report["reference"]["commit"] is None  # no prod model yet: this branch's own

    # Drift: the one issue is opened as on a dispatched run.
    assert report["status"] == "drift" and report["drifted_features"][0] == "mean_texture"
    assert result.step_succeeded(ISSUE_STEP), result
    assert [c[1] for c in calls] == [
        f"repos/{REPO}/labels",
        f"repos/{REPO}/issues",
        f"repos/{REPO}/issues",
    ] * 2
    drift_issue, performance_issue = calls[2], calls[5]
    fields = dict(a.split("=", 1) for a in drift_issue if "=" in a and not a.startswith("-"))
    assert "POST" in drift_issue and fields["labels[]"] == "drift"
    assert "mean_texture" in fields["body"]
    assert f"/{REPO}/actions/runs/{result.run_id}" in fields["body"]

    # Live performance, over 30 days of predictions: the labelled recent ones (the old
    # ones have no labels), judged against v1.0.0's registered test-set metrics.
    artifact = result.artifact("drift-report")
    live = json.loads((artifact / "performance.json").read_text())
    assert not list(artifact.rglob("*.parquet")), "served rows stay out of the artifact"
    assert live["status"] == "drop", live
    assert (live["predictions"], live["labelled_predictions"]) == (
        LOGGED_OLD + LOGGED_RECENT,
        LOGGED_RECENT,
    )
    [window] = live["windows"]
    roc = window["metrics"]["roc_auc"]
    assert window["model_version"] == RECENT_VERSION and roc["test"] == 0.99 and roc["alarm"]
    assert roc["high"] < 0.99 - 0.05  # the whole interval: a real drop beyond the allowance
    fields = dict(a.split("=", 1) for a in performance_issue if "=" in a and not a.startswith("-"))
    assert fields["labels[]"] == "performance"
    assert fields["title"] == "Live model performance dropped"
    assert "## 🔴 Live performance dropped" in fields["body"]
    assert "monitor.performance.max_drop.roc_auc: 0.05" in fields["body"]
    assert result.step_succeeded(PERFORMANCE_ISSUE_STEP), result

    # Labelled predictions are training rows: no feedback batch, yet a retraining PR.
    assert result.step_succeeded(RETRAIN_STEP), result
    assert f"appended {LOGGED_RECENT} labelled row(s)" in result.output
    (call,) = result.cml_calls()
    assert call["command"] == "pr create"
    assert call["flags"]["title"].startswith(
        "Retrain on labelled feedback (drift detected and live performance dropped"
    )
    body = call["flags"]["body"]
    assert "Why (drift check):" in body and "Why (live performance):" in body
    assert f"{RECENT_VERSION} " in body and "live roc_auc" in body


# --- the commands alone, against the same fakes (no act) -------------------------------


def _cli(args: list[str], cwd: Path, **env: str) -> Any:
    # The venv too: pytest may be started without it on PATH (.venv/bin/pytest).
    path = os.pathsep.join([str(FAKE_BIN), str(CML_BIN), str(VENV_BIN), os.environ["PATH"]])
    return run(["python", "-m", "mlops_template", *args], cwd, check=False, PATH=path, **env)


def _report(root: Path, status: str) -> None:
    out = root / "reports" / "monitor"
    out.mkdir(parents=True)
    reasons = ["feature 'x' drifted: PSI 0.9"] if status == "drift" else []
    (out / "drift.json").write_text(
        json.dumps({"status": status, "reasons": reasons, "created_at": "2026-01-01"})
    )
    (out / "summary.md").write_text("# Drift check: DRIFT detected\n\n| `x` | 0.9 |\n")


def test_issue_updates_the_open_drift_issue_instead_of_opening_another(tmp_path: Path) -> None:
    api = tmp_path / "api"
    (api / "repos" / REPO / "issues").mkdir(parents=True)
    (api / "repos" / REPO / "issues.json").write_text(
        json.dumps(
            [{"number": 12, "title": "PR", "pull_request": {}}, {"number": 9}, {"number": 4}]
        )
    )
    (api / "repos" / REPO / "issues" / "4.json").write_text("{}")
    (api / "repos" / REPO / "issues" / "4").mkdir()
    (api / "repos" / REPO / "issues" / "4" / "comments.json").write_text("{}")
    _report(tmp_path, "drift")
    env = {
        "GH_FAKE_API_DIR": str(api),
        "GH_TOKEN": "t",
        "GITHUB_REPOSITORY": REPO,
        "GITHUB_RUN_ID": "77",
    }
    result = _cli(["monitor", "issue"], tmp_path, **env)
    assert result.returncode == 0, result.stderr
    calls = [json.loads(line) for line in (api / "calls.jsonl").read_text().splitlines()]
    targets = [(c[1], c[c.index("-X") + 1]) for c in calls]
    assert targets == [
        (f"repos/{REPO}/labels", "POST"),
        (f"repos/{REPO}/issues", "GET"),
        (f"repos/{REPO}/issues/4", "PATCH"),  # the oldest open drift issue, not the PR
        (f"repos/{REPO}/issues/4/comments", "POST"),
    ]
    body = next(a for a in calls[2] if a.startswith("body="))
    assert "| `x` | 0.9 |" in body and "/acme/mlops-demo/actions/runs/77" in body


def test_issue_posts_nothing_without_drift_and_needs_gh_token(tmp_path: Path) -> None:
    api = tmp_path / "api"
    api.mkdir()
    _report(tmp_path, "ok")
    env = {"GH_FAKE_API_DIR": str(api), "GH_TOKEN": "t", "GITHUB_REPOSITORY": REPO}
    assert _cli(["monitor", "issue"], tmp_path, **env).returncode == 0
    assert not (api / "calls.jsonl").exists()
    (tmp_path / "reports" / "monitor" / "drift.json").write_text(json.dumps({"status": "drift"}))
    failed = _cli(
        ["monitor", "issue"],
        tmp_path,
        GH_FAKE_API_DIR=str(api),
        GH_TOKEN="",
        GITHUB_REPOSITORY=REPO,
    )
    assert failed.returncode == 2 and "GH_TOKEN" in failed.stderr


def test_pr_refuses_without_repo_token_or_new_feedback(tmp_path: Path) -> None:
    run(["git", "init", "-q", "-b", "main"], tmp_path)
    _report(tmp_path, "drift")
    log = tmp_path / "cml.jsonl"
    no_token = _cli(["monitor", "pr"], tmp_path, CML_RECORDER_LOG=str(log), REPO_TOKEN="")
    assert no_token.returncode == 2 and "REPO_TOKEN" in no_token.stderr
    nothing = _cli(["monitor", "pr"], tmp_path, CML_RECORDER_LOG=str(log), REPO_TOKEN="t")
    assert nothing.returncode == 2 and "no new feedback" in nothing.stderr
    assert not log.exists()
