"""The comparison: the vectorised bootstrap equals `compute_metrics` on explicit
resamples, verdicts follow each metric's direction, both models are scored on the same
rows through their own ONNX file and schema, and data/params diffs say what changed."""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset

from mlops_template import compare as c
from mlops_template.config import CompareParams, DataParams, GateParams, TrainParams
from mlops_template.evaluate import compute_metrics

METRICS = ["accuracy", "balanced_accuracy", "f1_macro", "log_loss", "roc_auc"]


def synthetic(n: int, k: int, seed: int, signal: float = 1.5, ties: bool = True) -> tuple:
    """Labels and two sets of probabilities (a good model and a shuffled one)."""
    rng = np.random.default_rng(seed)
    classes = [f"class_{i}" for i in range(k)]
    y_index = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y_index] += signal
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    if ties:  # coarse probabilities: many tied scores, as tree models produce
        proba = np.round(proba, 1) + 1e-3
        proba /= proba.sum(axis=1, keepdims=True)
    return np.asarray(classes)[y_index], classes, proba, np.roll(proba, 3, axis=0)


@pytest.mark.parametrize(("n", "k"), [(142, 2), (60, 3), (300, 5), (25, 4)])
def test_bootstrap_equals_compute_metrics_on_explicit_resamples(n: int, k: int) -> None:
    y, classes, good, bad = synthetic(n, k, seed=n + k)
    resamples = 25
    boot = c.bootstrap_metrics(y, classes, [good, bad], METRICS, resamples, seed=5)
    counts = np.concatenate(list(c.resample_counts(n, resamples, seed=5)))
    assert counts.shape == (resamples, n) and (counts.sum(axis=1) == n).all()
    compared = 0
    for b in range(resamples):
        rows = np.repeat(np.arange(n), counts[b].astype(int))
        for side, proba in enumerate((good, bad)):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # undefined AUC on a resample: NaN both ways
                expected = compute_metrics(y[rows], proba[rows], classes)
            for m in METRICS:
                got = boot[side][m][b]
                if math.isnan(expected[m]):
                    assert math.isnan(got), (m, b)
                else:
                    assert got == pytest.approx(expected[m], abs=1e-12), (m, b)
                    compared += 1
    assert compared > resamples * 2 * 4


def test_bootstrap_resamples_are_seeded_and_chunking_does_not_change_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    one = np.concatenate(list(c.resample_counts(50, 40, seed=1)))
    again = np.concatenate(list(c.resample_counts(50, 40, seed=1)))
    other = np.concatenate(list(c.resample_counts(50, 40, seed=2)))
    assert (one == again).all() and not (one == other).all()
    y, classes, good, bad = synthetic(200, 3, seed=0)
    whole = c.bootstrap_metrics(y, classes, [good, bad], METRICS, 30, seed=3)
    monkeypatch.setattr(c, "CHUNK_CELLS", 200 * 7)  # 7 resamples per chunk
    chunks = list(c.resample_counts(200, 30, seed=3))
    assert len(chunks) == 5
    chunked = c.bootstrap_metrics(y, classes, [good, bad], METRICS, 30, seed=3)
    for side in (0, 1):
        for m in METRICS:
            assert chunked[side][m].shape == (30,)
            assert np.isfinite(chunked[side][m]).all() == np.isfinite(whole[side][m]).all()


def test_identical_models_have_a_zero_interval_and_no_significant_change() -> None:
    y, classes, good, _ = synthetic(150, 2, seed=1)
    result = c.compare_metrics(y, classes, good, good.copy(), METRICS, 300, 0.95, 7)
    for m in result:
        assert m.delta == 0 and m.ci_low == 0 and m.ci_high == 0
        assert m.verdict == "no significant change"


def test_a_clearly_better_model_is_better_on_every_metric_including_log_loss() -> None:
    y, classes, good, bad = synthetic(400, 3, seed=2, signal=3.0, ties=False)
    result = {m.name: m for m in c.compare_metrics(y, classes, good, bad, METRICS, 500, 0.95, 7)}
    for name in METRICS:
        assert result[name].verdict == "better", result[name]
        assert result[name].ci_low <= result[name].delta <= result[name].ci_high
    assert result["log_loss"].delta < 0 and result["roc_auc"].delta > 0
    reverse = {m.name: m for m in c.compare_metrics(y, classes, bad, good, METRICS, 500, 0.95, 7)}
    assert all(reverse[name].verdict == "worse" for name in METRICS)
    assert reverse["log_loss"].delta > 0


def test_point_values_come_from_compute_metrics() -> None:
    y, classes, good, bad = synthetic(120, 2, seed=3)
    result = {m.name: m for m in c.compare_metrics(y, classes, good, bad, METRICS, 100, 0.9, 1)}
    expected_pr, expected_base = compute_metrics(y, good, classes), compute_metrics(y, bad, classes)
    for name in METRICS:
        assert result[name].pr == expected_pr[name]
        assert result[name].base == expected_base[name]


def test_a_wider_confidence_level_gives_a_wider_interval() -> None:
    y, classes, good, bad = synthetic(200, 2, seed=4, signal=0.3)
    narrow = c.compare_metrics(y, classes, good, bad, ["roc_auc"], 1000, 0.5, 7)[0]
    wide = c.compare_metrics(y, classes, good, bad, ["roc_auc"], 1000, 0.99, 7)[0]
    assert wide.ci_low < narrow.ci_low <= narrow.ci_high < wide.ci_high


def test_metric_undefined_in_too_many_resamples_has_no_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # One positive row in 40: about e^-1 of the resamples lack it and their AUC is NaN.
    y = np.array(["neg"] * 39 + ["pos"])
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(2), size=len(y))
    classes = ["neg", "pos"]
    kept = c.compare_metrics(y, classes, proba, proba[::-1], ["roc_auc"], 300, 0.95, 1)[0]
    assert 0.5 * 300 < kept.valid_resamples < 0.8 * 300
    assert kept.ci_low is not None and kept.verdict != "undetermined"
    monkeypatch.setattr(c, "MIN_VALID_RESAMPLE_FRACTION", 0.9)
    refused = c.compare_metrics(y, classes, proba, proba[::-1], ["roc_auc"], 300, 0.95, 1)[0]
    assert refused.ci_low is None and refused.ci_high is None
    assert refused.verdict == "undetermined" and refused.valid_resamples == kept.valid_resamples


def test_no_base_gives_pr_values_only() -> None:
    y, classes, good, _ = synthetic(80, 2, seed=5)
    result = c.compare_metrics(y, classes, good, None, METRICS, 100, 0.95, 1)
    assert all(m.base is None and m.verdict == "no base" for m in result)
    assert result[0].pr == compute_metrics(y, good, classes)[result[0].name]


def test_metrics_to_compare_adds_the_gated_ones() -> None:
    settings = CompareParams(metrics=["accuracy"])
    gate = GateParams(baseline={}, min={"roc_auc": 0.5}, max_regression={"log_loss": 0.1})
    assert c.metrics_to_compare(settings, gate) == ["accuracy", "roc_auc", "log_loss"]


# ---------------------------------------------------------------- real ONNX models


def build(
    frame: pd.DataFrame, data: DataParams, train: TrainParams, seed: int = 0
) -> dict[str, Any]:
    from mlops_template.config import SplitParams
    from mlops_template.data import stratified_split
    from mlops_template.train import fit_pipeline, to_onnx
    from mlops_template.validate import infer_schema

    kept = frame.drop(columns=data.drop_columns)
    schema = infer_schema(kept, data)
    train_rows, test_rows = stratified_split(kept, data.target, SplitParams(seed=seed))
    model = fit_pipeline(train_rows, schema, train)
    return {"onnx": to_onnx(model, schema), "schema": schema, "test": test_rows}


@pytest.fixture(scope="module")
def mixed_models() -> dict[str, dict[str, Any]]:
    frame = mixed_dataset()
    data = DataParams(target="label", id_columns=["customer_id"])
    return {
        "full": build(frame, data, TrainParams(model="logistic_regression")),
        "no_size": build(
            frame,
            DataParams(target="label", id_columns=["customer_id"], drop_columns=["size"]),
            TrainParams(model="logistic_regression"),
        ),
    }


def test_base_model_is_fed_a_dropped_feature_as_missing(mixed_models: dict) -> None:
    base, pr = mixed_models["full"], mixed_models["no_size"]
    test = pr["test"]
    assert "size" not in test.columns
    candidate = c.ModelArtifacts(pr["onnx"], pr["schema"], {"a": 1})
    baseline = c.ModelArtifacts(base["onnx"], base["schema"], {"a": 2})
    result = c.compare(candidate, baseline, test, CompareParams(bootstrap_resamples=200))
    assert result.base_available and result.fed_missing == ["size"]
    assert result.data.removed_columns == ["size"] and result.data.added_columns == []
    assert result.outputs_base is not None and np.isfinite(result.outputs_base).all()
    assert np.allclose(result.outputs_base.sum(axis=1), 1)
    assert [p.key for p in result.params] == ["a"]
    assert len(result.y_true) == len(test)


def test_scores_follow_the_models_own_schema_and_class_order(mixed_models: dict) -> None:
    model = mixed_models["full"]
    classes = list(model["schema"]["classes"])
    proba, absent = c.score_model(model["onnx"], model["schema"], model["test"], classes)
    assert absent == []
    reversed_proba, _ = c.score_model(model["onnx"], model["schema"], model["test"], classes[::-1])
    assert np.array_equal(reversed_proba, proba[:, ::-1])
    shuffled = model["test"].sample(frac=1.0, axis=1, random_state=0)  # column order is irrelevant
    again, _ = c.score_model(model["onnx"], model["schema"], shuffled, classes)
    assert np.allclose(again, proba)


def test_base_with_other_classes_is_not_comparable(mixed_models: dict) -> None:
    model = mixed_models["full"]
    other_schema = dict(model["schema"], classes=["x", "y", "z"])
    candidate = c.ModelArtifacts(model["onnx"], model["schema"])
    baseline = c.ModelArtifacts(model["onnx"], other_schema)
    result = c.compare(candidate, baseline, model["test"], CompareParams(bootstrap_resamples=100))
    assert not result.base_available and "classes" in result.base_note
    assert result.outputs_base is None and all(m.base is None for m in result.metrics)


def test_same_model_on_both_sides_compares_equal(mixed_models: dict) -> None:
    model = mixed_models["full"]
    artifacts = c.ModelArtifacts(model["onnx"], model["schema"], {"train": {"seed": 1}})
    result = c.compare(artifacts, artifacts, model["test"], CompareParams(bootstrap_resamples=200))
    assert all(m.delta == 0 and m.verdict == "no significant change" for m in result.metrics)
    assert result.params == [] and not result.data.changed
    assert result.confusion_pr == result.confusion_base


# ---------------------------------------------------------------- diffs


def test_params_diff_flattens_and_reports_added_removed_and_changed() -> None:
    base = {"train": {"model": "rf", "rf": {"depth": None, "n": 100}}, "old": 1, "same": [1, 2]}
    pr = {"train": {"model": "rf", "rf": {"depth": 1, "n": 100}}, "new": True, "same": [1, 2]}
    changes = {p.key: p for p in c.params_diff(base, pr)}
    assert set(changes) == {"train.rf.depth", "old", "new"}
    assert changes["train.rf.depth"].base is None and changes["train.rf.depth"].pr == 1
    assert changes["old"].removed and not changes["old"].added
    assert changes["new"].added and changes["new"].pr is True
    assert [p.key for p in c.params_diff({"a": 1}, {"a": 1.0})] == ["a"]  # int -> float
    assert c.params_diff(base, base) == []


def test_data_diff_reports_columns_kinds_levels_and_balance() -> None:
    base = {
        "target": "y",
        "rows": 100,
        "dataset_hash": "aaa",
        "class_counts": {"no": 60, "yes": 40},
        "features": [
            {"name": "age", "kind": "numeric", "dtype": "int64", "min": 1, "max": 90},
            {"name": "city", "kind": "categorical", "dtype": "object", "levels": ["a", "b"]},
            {"name": "gone", "kind": "numeric", "dtype": "float64", "min": 0, "max": 1},
            {"name": "code", "kind": "numeric", "dtype": "int64", "min": 0, "max": 9},
        ],
    }
    pr = {
        "target": "y",
        "rows": 120,
        "dataset_hash": "bbb",
        "class_counts": {"no": 60, "yes": 50, "maybe": 10},
        "features": [
            {"name": "age", "kind": "numeric", "dtype": "int64", "min": 0, "max": 90},
            {"name": "city", "kind": "categorical", "dtype": "object", "levels": ["b", "c"]},
            {"name": "code", "kind": "categorical", "dtype": "object", "levels": ["0"]},
            {"name": "new", "kind": "numeric", "dtype": "float64", "min": 0, "max": 1},
        ],
    }
    d = c.data_diff(base, pr, pr_test_rows=30, base_test_rows=25)
    assert d.changed and d.added_columns == ["new"] and d.removed_columns == ["gone"]
    assert (d.base_features, d.pr_features, d.base_rows, d.pr_rows) == (4, 4, 100, 120)
    whats = {(s.column, s.what): s for s in d.schema_changes}
    assert whats[("age", "range")].base == "[1, 90]"
    assert whats[("city", "levels added")].pr == "c"
    assert whats[("city", "levels removed")].base == "a"
    assert whats[("code", "kind")].pr == "categorical"
    assert ("maybe", None, 10) in d.class_balance and ("yes", 40, 50) in d.class_balance
    same = c.data_diff(base, base, 30, 30)
    assert not same.changed and same.schema_changes == []
    first = c.data_diff(None, pr, 30, None)
    assert first.base_rows is None and first.added_columns == [] and first.removed_columns == []


def test_validation_summary_lists_failures() -> None:
    report = {
        "passed": False,
        "checks": [{}, {}, {}],
        "failures": [{"rule": "missing_fraction", "column": "x", "detail": "40% missing"}],
    }
    summary = c.validation_summary(report)
    assert summary.passed is False and summary.checks == 3
    assert summary.failures == ["missing_fraction (x): 40% missing"]
    assert c.validation_summary(None).passed is None
