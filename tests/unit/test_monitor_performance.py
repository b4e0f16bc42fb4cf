"""`monitor labels` and `monitor performance` as a user runs them: a project with a
schema, a registry tag carrying the version's test-set metrics, and a prediction log
written by the serving API's logger; the labels come back in a CSV file."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.helpers import FIXTURE_PARAMS, run

from mlops_template.predlog import PredictionLogger
from mlops_template.registry import registration_message

pytestmark = pytest.mark.slow  # the real command line, a subprocess per call

CLASSES = ["benign", "malignant"]
ROWS = 600
TEST_AUC = 0.86  # about what this stream's model scores with true labels (see below)


def stream(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated model's p(malignant) and labels drawn from it."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(0, 2, ROWS)))
    return p, rng.random(ROWS) < p


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    shutil.copy2(FIXTURE_PARAMS, root / "params.yaml")
    schema = {"target": "diagnosis", "task": "binary", "classes": CLASSES, "features": []}
    (root / "data" / "schema.json").write_text(json.dumps(schema))
    run(["git", "init", "-q", "-b", "main"], root)
    run(["git", "add", "-A"], root)
    run(["git", "commit", "-q", "-m", "init"], root)
    message = registration_message(
        "model", "v1.0.0", {"roc_auc": TEST_AUC, "accuracy": 0.79}, {}, None
    )
    run(["git", "tag", "-a", "model@v1.0.0", "-m", message], root)

    p, _ = stream(0)
    logger = PredictionLogger(root / "logs" / "predictions.sqlite", classes=CLASSES)
    for start in range(0, ROWS, 100):  # six requests of 100 rows, an hour apart
        chunk = p[start : start + 100]
        assert logger.log(
            [{"x": float(i)} for i in range(len(chunk))],
            np.where(chunk > 0.5, CLASSES[1], CLASSES[0]).tolist(),
            np.c_[1 - chunk, chunk],
            "v1.0.0",
            f"req-{start // 100}",
            timestamp=1_779_926_400 + 3600 * start / 100,  # 2026-05-28 00:00 UTC on
        )
    logger.close()
    return root


def labels_file(root: Path, truth: np.ndarray, name: str = "labels.csv") -> Path:
    frame = pd.DataFrame(
        {
            "request_id": [f"req-{i // 100}" for i in range(ROWS)],
            "row": [i % 100 for i in range(ROWS)],
            "diagnosis": np.where(truth, CLASSES[1], CLASSES[0]),
        }
    )
    frame.to_csv(root / name, index=False)
    return root / name


def monitor(root: Path, *args: str) -> Any:
    return run(
        ["python", "-m", "mlops_template", "monitor", *args],
        root,
        check=False,
        GITHUB_OUTPUT="",
        GITHUB_STEP_SUMMARY="",
        PREDICTION_LOG="",
    )


def test_labels_are_stored_once_and_a_conflicting_file_is_refused_naming_the_row(
    project: Path,
) -> None:
    _, truth = stream(0)
    result = monitor(project, "labels", "--file", str(labels_file(project, truth)))
    assert result.returncode == 0, result.stderr
    assert "600 label(s) read, 600 stored" in result.stderr
    again = monitor(project, "labels", "--file", "labels.csv")
    assert again.returncode == 0, again.stderr
    assert "0 stored in logs/predictions.sqlite, 600 already there (ignored), 0 refused" in (
        again.stderr
    )
    truth[7] = not truth[7]
    flipped = labels_file(project, truth, "corrected.csv")
    refused = monitor(project, "labels", "--file", str(flipped))
    assert refused.returncode == 2
    kept = CLASSES[int(not truth[7])]
    assert f"request 'req-0' row 7 is labelled {kept!r} already" in refused.stderr
    assert "1 label(s) conflict with stored ones" in refused.stderr


def test_a_labels_file_without_the_log_or_with_a_bad_row_names_it(project: Path) -> None:
    _, truth = stream(0)
    labels_file(project, truth)
    missing = monitor(project, "labels", "--file", "labels.csv", "--log", "logs/none.sqlite")
    assert missing.returncode == 2
    assert "prediction log 'logs/none.sqlite' does not exist" in missing.stderr
    (project / "bad.csv").write_text("request_id,row,diagnosis\nreq-0,0,benign\nreq-0,1,cyst\n")
    bad = monitor(project, "labels", "--file", "bad.csv")
    assert bad.returncode == 2
    assert "labels file row 2: diagnosis 'cyst' is not a class of the model" in bad.stderr


def test_performance_holds_on_true_labels_and_drops_on_a_changed_world(project: Path) -> None:
    _, truth = stream(0)
    assert monitor(project, "labels", "--file", str(labels_file(project, truth))).returncode == 0
    result = monitor(project, "performance", "--out", "healthy")
    assert result.returncode == 0, result.stderr
    report = json.loads((project / "healthy" / "performance.json").read_text())
    assert report["status"] == "ok" and report["labelled_predictions"] == ROWS
    # params: 24 h windows, at least 200 labels: the six hours are one judged window
    [window] = report["windows"]
    assert window["judged"] and window["labelled_rows"] == ROWS
    roc = window["metrics"]["roc_auc"]
    assert roc["test"] == TEST_AUC and roc["low"] <= roc["live"] <= roc["high"]
    assert roc["max_drop"] == 0.05 and "r2" not in window["metrics"]

    # the world changed: a third of the labels are the other class
    changed = truth ^ (np.random.default_rng(1).random(ROWS) < 0.33)
    shutil.copy2(project / "logs" / "predictions.sqlite", project / "logs" / "changed.sqlite")
    store = project / "logs" / "changed.sqlite"
    with sqlite3.connect(store) as connection:
        connection.execute("DELETE FROM labels")
    labels_file(project, changed, "changed.csv")
    stored = monitor(project, "labels", "--file", "changed.csv", "--log", str(store))
    assert stored.returncode == 0, stored.stderr
    dropped = monitor(project, "performance", "--log", str(store), "--out", "changed")
    assert dropped.returncode == 3, dropped.stderr
    report = json.loads((project / "changed" / "performance.json").read_text())
    assert report["status"] == "drop"
    assert report["reasons"][0].startswith("v1.0.0 2026-05-28 00:00: live roc_auc ")
    markdown = (project / "changed" / "performance.md").read_text()
    assert markdown.startswith("## 🔴 Live performance dropped")
    assert "monitor.performance.max_drop.roc_auc: 0.05" in markdown
    assert monitor(project, "performance", "--log", str(store), "--no-fail-on-drop").returncode == 0
