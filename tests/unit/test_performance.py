"""Live performance from delayed labels (performance.py): the labels file, the join to
the logged predictions (exactly once), the weighted metrics the bootstrap uses, the
windows and the alarm, whose false-alarm rate is measured over seeds."""

from __future__ import annotations

import math
import re
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_template.metrics import compute_metrics, compute_regression_metrics
from mlops_template.performance import (
    LABEL,
    Joined,
    LabelError,
    WeightedScorer,
    join_labels,
    live_metrics,
    normalise_labels,
    performance_by_window,
    performance_verdict,
    read_labels,
    render_markdown,
    store_labels,
)
from mlops_template.predlog import (
    MODEL_VERSION,
    PREDICTION,
    PROBABILITY_PREFIX,
    ROW,
    TIMESTAMP,
    PredictionLogger,
    read_log,
)

CLASSES = ["no", "yes"]


# ------------------------------------------------------------------- the labels file


@pytest.mark.parametrize(
    ("frame", "task", "message"),
    [
        (pd.DataFrame({"id": ["a"], "label": ["yes"]}), "classification", "no 'request_id'"),
        (pd.DataFrame({"request_id": ["a"], "y": ["yes"]}), "classification", "'churned'"),
        (
            pd.DataFrame({"request_id": ["a", ""], "label": ["yes", "no"]}),
            "classification",
            "row 2: request_id is empty",
        ),
        (
            pd.DataFrame({"request_id": ["a", "a"], "row": [0, -1], "label": ["no", "yes"]}),
            "classification",
            "row 2: row -1 is not a row number",
        ),
        (
            pd.DataFrame({"request_id": ["a"], "row": [1.5], "label": ["no"]}),
            "classification",
            "row 1: row 1.5",
        ),
        (
            pd.DataFrame({"request_id": ["a"], "label": ["maybe"]}),
            "classification",
            "row 1: label 'maybe' is not a class of the model (['no', 'yes'])",
        ),
        (
            pd.DataFrame({"request_id": ["a", "b"], "label": ["1.5", "lots"]}),
            "regression",
            "row 2: label 'lots' is not a number",
        ),
        (
            pd.DataFrame({"request_id": ["a", "a"], "label": ["no", "yes"]}),
            "classification",
            "request 'a' row 0 has two different labels",
        ),
    ],
)
def test_a_bad_labels_file_is_refused_naming_the_row_and_column(
    frame: pd.DataFrame, task: str, message: str
) -> None:
    classes = CLASSES if task == "classification" else None
    with pytest.raises(LabelError, match=re.escape(message)):
        normalise_labels(frame, "churned", task, classes)


def test_the_target_column_and_numeric_classes_are_accepted() -> None:
    frame = pd.DataFrame(
        {"request_id": ["a", "a", "b"], "row": [1, 1, 0], "churned": [1.0, 1.0, 0]}
    )
    labels = normalise_labels(frame, "churned", "classification", ["0", "1"])
    # the repeated identical label counts once; 1.0 read from a CSV is the class "1"
    assert labels.to_dict("list") == {"request_id": ["a", "b"], "row": [1, 0], LABEL: ["1", "0"]}


# --------------------------------------------------------------- the label table


def test_stored_labels_ignore_duplicates_and_refuse_conflicts(tmp_path: Path) -> None:
    db = tmp_path / "log.sqlite"
    first = pd.DataFrame(
        {"request_id": ["a", "a", "b"], "row": [0, 1, 0], LABEL: ["no", "yes", "no"]}
    )
    assert store_labels(db, first, now=1.0).new == 3
    again = pd.DataFrame(
        {"request_id": ["a", "b", "c"], "row": [1, 0, 0], LABEL: ["yes", "yes", "no"]}
    )
    stored = store_labels(db, again, now=2.0)
    assert (stored.new, stored.duplicates) == (1, 1)
    assert stored.conflicts == [("b", 0, "no", "yes")]
    table = read_labels(db, "classification").sort_values(["request_id", "row"])
    assert table.values.tolist() == [
        ["a", 0, "no"],
        ["a", 1, "yes"],
        ["b", 0, "no"],
        ["c", 0, "no"],
    ]
    received = sqlite3.connect(db).execute("SELECT received FROM labels WHERE request_id = 'c'")
    assert received.fetchone() == (2.0,)


def test_regression_labels_come_back_as_numbers(tmp_path: Path) -> None:
    db = tmp_path / "log.sqlite"
    store_labels(db, pd.DataFrame({"request_id": ["a"], "row": [0], LABEL: [2.5]}))
    assert read_labels(db, "regression")[LABEL].tolist() == [2.5]


# ------------------------------------------------------------------------ the join


def test_each_label_joins_once_to_the_prediction_of_its_row(tmp_path: Path) -> None:
    db = tmp_path / "predictions.sqlite"
    logger = PredictionLogger(db, classes=CLASSES)
    features = [{"x": float(i)} for i in range(3)]
    assert logger.log(
        features,
        ["no", "yes", "yes"],
        [[0.8, 0.2], [0.3, 0.7], [0.1, 0.9]],
        "v1",
        "a",
        timestamp=10,
    )
    assert logger.log(features[:1], ["no"], [[0.6, 0.4]], "v1", "b", timestamp=11)
    # a client that reused a request id: its key is ambiguous
    assert logger.log(features[:1], ["yes"], [[0.2, 0.8]], "v1", "dup", timestamp=12)
    assert logger.log(features[:1], ["no"], [[0.9, 0.1]], "v2", "dup", timestamp=13)
    logger.close()
    log = read_log(db)
    assert log[ROW].tolist() == [0, 1, 2, 0, 0, 0]

    labels = pd.DataFrame(
        {"request_id": ["a", "a", "b", "dup", "later"], "row": [2, 0, 0, 0, 0],
         LABEL: ["no", "no", "yes", "yes", "no"]}
    )  # fmt: skip
    joined = join_labels(log, labels)
    assert (joined.labels, joined.unmatched, joined.ambiguous) == (5, 1, 1)
    rows = joined.rows.sort_values(["request_id", "row"])
    assert rows[["request_id", "row", PREDICTION, LABEL]].values.tolist() == [
        ["a", 0, "no", "no"],
        ["a", 2, "yes", "no"],
        ["b", 0, "no", "yes"],
    ]
    assert rows[PROBABILITY_PREFIX + "yes"].tolist() == [0.2, 0.9, 0.4]


# ------------------------------------------------------------ the weighted metrics


def test_weighted_metrics_equal_the_metrics_of_the_rows_repeated() -> None:
    rng = np.random.default_rng(0)
    n = 300
    for k in (2, 4):
        classes = [f"c{i}" for i in range(k)]
        proba = rng.dirichlet(np.ones(k), n).round(2)  # rounded: tied scores
        proba /= proba.sum(axis=1, keepdims=True)
        truth = np.asarray(classes)[rng.integers(0, k, n)]
        scorer = WeightedScorer(truth, proba, classes, "classification")
        assert scorer.score() == pytest.approx(compute_metrics(truth, proba, classes), abs=1e-12)
        counts = rng.integers(0, 4, n)
        repeated = compute_metrics(
            np.repeat(truth, counts), np.repeat(proba, counts, axis=0), classes
        )
        assert scorer.score(counts) == pytest.approx(repeated, abs=1e-12)

    y = rng.normal(10, 3, n)
    y[:5] = 0.0  # MAPE undefined while a zero is drawn
    pred = y + rng.normal(0, 1, n)
    scorer = WeightedScorer(y, pred, [], "regression")
    for counts in (
        np.ones(n, dtype=int),
        rng.integers(0, 3, n),
        np.r_[np.zeros(5, int), np.ones(n - 5, int)],
    ):
        repeated = compute_regression_metrics(np.repeat(y, counts), np.repeat(pred, counts))
        assert scorer.score(counts) == pytest.approx(repeated, abs=1e-12)
    assert "mape" not in scorer.score() and "mape" in scorer.score(
        np.r_[np.zeros(5), np.ones(n - 5)]
    )


def test_a_label_outside_the_models_classes_is_named() -> None:
    with pytest.raises(LabelError, match=r"labels \['maybe'\] are not among"):
        WeightedScorer(
            np.array(["no", "maybe"]), np.array([[0.5, 0.5]] * 2), CLASSES, "classification"
        )


# ------------------------------------------------------------ windows and verdict


def logged(rows: list[tuple[str, float, str, float]]) -> pd.DataFrame:
    """(version, hour, label, p(yes)) -> joined rows as read_log + join_labels give them."""
    version, hour, label, p = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            TIMESTAMP: pd.to_datetime(np.asarray(hour) * 3600, unit="s", utc=True),
            MODEL_VERSION: version,
            PREDICTION: np.where(np.asarray(p) > 0.5, "yes", "no"),
            PROBABILITY_PREFIX + "no": 1 - np.asarray(p),
            PROBABILITY_PREFIX + "yes": p,
            LABEL: label,
        }
    )


def test_live_metrics_of_a_constructed_window_and_its_verdict() -> None:
    # v1 in hour 0: 2 of 4 right (0.4 and 0.6 are on the wrong side); the positives score 0.9 and 0.4, the negatives 0.2, 0.6:
    # AUC = pairs ordered right / all = (0.9>0.2, 0.9>0.6, 0.4>0.2) / 4 = 0.75
    rows = logged(
        [("v1", 0.1, "yes", 0.9), ("v1", 0.2, "no", 0.2), ("v1", 0.3, "yes", 0.4),
         ("v1", 0.4, "no", 0.6), ("v1", 1.5, "yes", 0.9), ("v2", 0.5, "no", 0.1)]
    )  # fmt: skip
    tested = {"v1": {"roc_auc": 0.95, "accuracy": 0.9}}
    results = performance_by_window(
        rows, "classification", tested, pd.Timedelta(hours=1), min_labels=2,
        max_drop={"roc_auc": 0.1}, resamples=200,
    )  # fmt: skip
    assert [(r.model_version, r.start.hour, r.rows, r.judged) for r in results] == [
        ("v1", 0, 4, True), ("v1", 1, 1, False), ("v2", 0, 1, False)
    ]  # fmt: skip
    first = {m.name: m for m in results[0].metrics}
    assert first["accuracy"].value == 0.5
    assert first["roc_auc"].value == pytest.approx(0.75)
    assert first["roc_auc"].drop == pytest.approx(0.2)
    assert first["roc_auc"].low <= 0.75 <= first["roc_auc"].high
    assert first["accuracy"].max_drop is None and not first["accuracy"].alarm
    # four rows: the interval is wide, so a 0.2 drop is not shown to be real
    assert not results[0].alarm
    alarm, reasons = performance_verdict(results)
    assert (alarm, reasons) == (False, [])
    markdown = render_markdown(results, join_stub(len(rows)), reasons, 0.95, ["v2"])
    assert "🟢 Live performance holds" in markdown and "_too few labels_" in markdown
    assert "no test-set metrics for v2" in markdown


def join_stub(rows: int) -> Joined:
    return Joined(pd.DataFrame(index=range(rows)), rows, 0, 0)


def healthy_or_degraded(n: int, seed: int, flipped: float = 0.0) -> pd.DataFrame:
    """A calibrated model's stream: labels drawn from its own probabilities, then a
    share of them flipped (the world changed under the model)."""
    rng = np.random.default_rng(seed)
    p = 1 / (1 + np.exp(-rng.normal(0, 2, n)))
    truth = rng.random(n) < p
    truth ^= rng.random(n) < flipped
    return logged([("v1", 0.0, "yes" if t else "no", q) for t, q in zip(truth, p, strict=True)])


@pytest.fixture(scope="module")
def population_metrics() -> dict[str, float]:
    rows = healthy_or_degraded(100_000, seed=10_000)
    scorer = WeightedScorer(
        rows[LABEL].to_numpy(),
        rows[[PROBABILITY_PREFIX + c for c in CLASSES]].to_numpy(),
        CLASSES,
        "classification",
    )
    return scorer.score()


def alarm_rate(population: dict[str, float], max_drop: float, flipped: float, seeds: int) -> float:
    alarms = 0
    for seed in range(seeds):
        rows = healthy_or_degraded(400, seed, flipped)
        metrics = live_metrics(
            rows, "classification", population, {"roc_auc": max_drop}, 100, 0.95, seed
        )
        alarms += any(m.alarm for m in metrics)
    return alarms / seeds


def test_a_degraded_stream_raises_the_alarm_and_a_healthy_one_rarely_does(
    population_metrics: dict[str, float],
) -> None:
    # a quarter of the labels flipped: AUC about 0.86 -> 0.68, always caught at 400 rows
    assert alarm_rate(population_metrics, 0.05, flipped=0.25, seeds=20) == 1.0
    # healthy, with the shipped allowance: no alarm
    assert alarm_rate(population_metrics, 0.05, flipped=0.0, seeds=20) == 0.0
    # healthy with no allowance at all: the alarm needs the whole 95 % interval below
    # the test value, so it fires about 2.5 % of the time (one side); measured over 60
    # seeds (a point-estimate rule would fire about half the time)
    rate = alarm_rate(population_metrics, 0.0, flipped=0.0, seeds=60)
    assert rate <= 0.1, rate


def test_the_verdict_names_version_window_metric_and_the_params_key(
    population_metrics: dict[str, float],
) -> None:
    rows = healthy_or_degraded(400, seed=1, flipped=0.25)
    results = performance_by_window(
        rows, "classification", {"v1": population_metrics}, pd.Timedelta(hours=24), 200,
        {"roc_auc": 0.05},
    )  # fmt: skip
    alarm, reasons = performance_verdict(results)
    assert alarm and len(reasons) == 1
    assert reasons[0].startswith("v1 1970-01-01 00:00: live roc_auc ")
    assert "> monitor.performance.max_drop.roc_auc: 0.05" in reasons[0]
    roc = next(m for m in results[0].metrics if m.name == "roc_auc")
    assert roc.worse_by_at_least is not None and roc.worse_by_at_least > 0.05
    assert math.isclose(roc.drop, population_metrics["roc_auc"] - roc.value)


def test_a_regression_models_live_r2_is_judged_and_classification_rules_do_not_apply() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(100, 20, 500)
    stamps = pd.to_datetime(np.zeros(500), unit="s", utc=True)
    for noise, alarmed in ((5.0, False), (40.0, True)):  # r2 about 0.94, then below 0
        rows = pd.DataFrame(
            {
                TIMESTAMP: stamps,
                MODEL_VERSION: "v2.0.0",
                PREDICTION: y + rng.normal(0, noise, 500),
                LABEL: y,
            }
        )
        [result] = performance_by_window(
            rows, "regression", {"v2.0.0": {"r2": 0.95, "rmse": 4.8}}, pd.Timedelta(hours=24),
            100, {"r2": 0.1},
        )  # fmt: skip
        metrics = {m.name: m for m in result.metrics}
        assert set(metrics) == {"rmse", "mae", "r2", "mape"}
        assert metrics["rmse"].value == pytest.approx(noise, rel=0.15)
        assert metrics["rmse"].drop == pytest.approx(metrics["rmse"].value - 4.8)  # lower is better
        assert result.alarm is alarmed and metrics["r2"].alarm is alarmed
