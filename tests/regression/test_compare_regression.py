"""PR comparison and quality gate on regression metrics: paired bootstrap on the same
test rows, directions (lower rmse/mae/mape is better), every gate case."""

from __future__ import annotations

import math

import numpy as np
import pytest
from tests.conftest import mixed_dataset, mixed_regression_dataset

from mlops_template import compare as c
from mlops_template.baseline import baseline_metrics
from mlops_template.config import CompareParams, DataParams, GateParams, SplitParams, TrainParams
from mlops_template.data import stratified_split
from mlops_template.evaluate import compute_regression_metrics
from mlops_template.train import fit_pipeline, to_onnx
from mlops_template.validate import infer_schema

METRICS = ["rmse", "mae", "r2", "mape"]


def noisy(y: np.ndarray, scale: float, seed: int) -> np.ndarray:
    return y + np.random.default_rng(seed).normal(0, scale, size=len(y))


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return np.random.default_rng(0).normal(100, 20, size=300)


def test_vectorised_bootstrap_equals_the_metric_definition_on_each_resample(
    truth: np.ndarray,
) -> None:
    pred = noisy(truth, 5, 1)
    [boot] = c.bootstrap_regression_metrics(truth, [pred], METRICS, resamples=100, seed=3)
    rng = np.random.default_rng(3)
    draws = rng.integers(0, len(truth), size=(100, len(truth)))  # as resample_counts draws
    for i in (0, 17, 99):
        rows = draws[i]
        expected = compute_regression_metrics(truth[rows], pred[rows])
        for m in METRICS:
            assert boot[m][i] == pytest.approx(expected[m], rel=1e-9), (m, i)


def test_better_equal_and_worse_models(truth: np.ndarray) -> None:
    base = noisy(truth, 10, 1)
    better = noisy(truth, 4, 2)
    worse = noisy(truth, 25, 3)
    args = (METRICS, 1000, 0.95, 7)
    for m in c.compare_regression_metrics(truth, better, base, *args):
        assert m.verdict == "better", m
    assert [m.delta < 0 for m in c.compare_regression_metrics(truth, better, base, *args)] == [
        True,
        True,
        False,  # r2 rises
        True,
    ]
    for m in c.compare_regression_metrics(truth, base, base, *args):
        assert m.delta == 0 and m.ci_low == 0 and m.ci_high == 0
        assert m.verdict == "no significant change"
    for m in c.compare_regression_metrics(truth, worse, base, *args):
        assert m.verdict == "worse", m


def test_mape_with_a_zero_target_is_undetermined() -> None:
    y = np.r_[0.0, np.linspace(1, 50, 99)]
    [mape] = c.compare_regression_metrics(y, y + 1, y + 2, ["mape"], 200, 0.95, 0)
    assert math.isnan(mape.pr) and mape.verdict == "undetermined" and mape.ci_low is None


def regression_comparison(
    metrics: list[c.MetricComparison],
    base: bool = True,
    baselines: dict | None = None,
) -> c.Comparison:
    y = np.array([1.0, 2.0])
    return c.Comparison(
        classes=[],
        y_true=y,
        outputs_pr=y,
        outputs_base=y if base else None,
        metrics=metrics,
        base_available=base,
        base_note="" if base else "no base model (first model)",
        fed_missing=[],
        data=c.data_diff(None, {"target": "t", "features": []}, 2, None),
        params=[],
        validation_pr=c.ValidationSummary(True, 1, []),
        validation_base=None,
        confusion_pr=[],
        confusion_base=None,
        resamples=1000,
        confidence=0.95,
        seed=7,
        bootstrap_seconds=0.0,
        baselines=baselines,
        task="regression",
    )


GATE = GateParams(
    baseline={"mean": {"r2": 0.05}, "linear": {"rmse": -1.0}},
    min={"r2": 0.5, "rmse": 12.0},
    max_regression={"rmse": 0.5, "r2": 0.02},
)


def gate_on(truth: np.ndarray, pred: np.ndarray, base: np.ndarray | None) -> c.GateDecision:
    metrics = c.compare_regression_metrics(truth, pred, base, METRICS, 1000, 0.95, 7)
    baselines = {
        "mean": compute_regression_metrics(truth, np.full(len(truth), truth.mean())),
        "linear": compute_regression_metrics(truth, noisy(truth, 9, 9)),
    }
    return c.decide_gate(regression_comparison(metrics, base is not None, baselines), GATE)


def failed(decision: c.GateDecision) -> list[str]:
    return [r.rule for r in decision.rules if not r.passed]


def test_gate_passes_a_better_and_an_equal_model(truth: np.ndarray) -> None:
    base = noisy(truth, 8, 1)
    for candidate in (noisy(truth, 4, 2), base):
        decision = gate_on(truth, candidate, base)
        assert decision.passed, decision.reasons
        assert {r.rule for r in decision.rules} == {
            "gate.baseline.mean.r2",
            "gate.baseline.linear.rmse",
            "gate.min.r2",
            "gate.min.rmse",
            "gate.max_regression.rmse",
            "gate.max_regression.r2",
        }


def test_gate_fails_a_degraded_model_on_direction_aware_rules(truth: np.ndarray) -> None:
    decision = gate_on(truth, noisy(truth, 11, 2), noisy(truth, 4, 1))
    assert not decision.passed and decision.blocking
    assert "gate.max_regression.rmse" in failed(decision)
    assert "gate.max_regression.r2" in failed(decision)
    assert "gate.baseline.linear.rmse" in failed(decision)  # trails the ridge by > 1
    [reason] = [r for r in decision.reasons if r.startswith("gate.max_regression.rmse")]
    assert "rmse rose from" in reason and "beyond the allowed regression of 0.5" in reason


def test_gate_min_is_a_ceiling_for_error_metrics(truth: np.ndarray) -> None:
    decision = gate_on(truth, noisy(truth, 14, 2), None)
    assert "gate.min.rmse" in failed(decision)
    [reason] = [r for r in decision.reasons if r.startswith("gate.min.rmse")]
    assert "is above the maximum 12.0" in reason


def test_first_model_skips_the_regression_rules(truth: np.ndarray) -> None:
    decision = gate_on(truth, noisy(truth, 4, 2), None)
    assert decision.passed
    assert not [r for r in decision.rules if r.rule.startswith("gate.max_regression")]
    assert any("regression rules skipped" in n for n in decision.notes)


def test_nan_r2_is_refused() -> None:
    y = np.full(50, 3.0)  # constant target: r2 undefined
    metrics = c.compare_regression_metrics(y, y + 0.1, y + 0.2, METRICS, 200, 0.95, 0)
    gate = GateParams(baseline={}, min={"r2": 0.5}, max_regression={"r2": 0.02})
    decision = c.decide_gate(regression_comparison(metrics), gate)
    assert failed(decision) == ["gate.min.r2", "gate.max_regression.r2"]
    assert "undefined" in decision.reasons[0]


def test_classification_rules_are_listed_not_judged_for_a_regression_model(
    truth: np.ndarray,
) -> None:
    metrics = c.compare_regression_metrics(truth, truth + 1, truth + 1, METRICS, 200, 0.95, 0)
    classification_only = GateParams()  # the shipped defaults: roc_auc, balanced_accuracy
    decision = c.decide_gate(regression_comparison(metrics), classification_only)
    assert failed(decision) == ["gate"]  # nothing would judge the model: refused
    assert "no rule judges a regression model's metrics" in decision.reasons[0]
    assert "gate.baseline.majority.roc_auc" in decision.other_task_rules
    assert not any("roc_auc" in n for n in decision.notes)


# ------------------------------------------------------------- real models, compare()


@pytest.fixture(scope="module")
def models() -> dict:
    frame = mixed_regression_dataset(rows=600, seed=8)
    data = DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"])
    schema = infer_schema(frame, data)
    train, test = stratified_split(frame, "label", SplitParams(), "regression")

    def onnx(params: dict) -> bytes:
        return to_onnx(fit_pipeline(train, schema, TrainParams.model_validate(params)), schema)

    good = onnx({"model": "hist_gradient_boosting", "hist_gradient_boosting": {"max_iter": 100}})
    weak = onnx(
        {
            "model": "hist_gradient_boosting",
            "hist_gradient_boosting": {"max_iter": 3, "learning_rate": 0.1},
        }
    )
    return {
        "schema": schema,
        "train": train,
        "test": test,
        "good": good,
        "weak": weak,
        "baseline": baseline_metrics(train, test, schema),
    }


def side(models: dict, which: str, with_baseline: bool = True) -> c.ModelArtifacts:
    return c.ModelArtifacts(
        onnx=models[which],
        schema=models["schema"],
        baseline=models["baseline"] if with_baseline else None,
    )


SETTINGS = CompareParams()  # compare.metrics lists only classification metrics
PROJECT_GATE = GateParams(
    baseline={"mean": {"r2": 0.05}, "linear": {"r2": -0.05}},
    min={},
    max_regression={"r2": 0.02},
)


@pytest.mark.parametrize(
    ("pr", "base", "verdict", "passes"),
    [("good", "weak", "better", True), ("good", "good", "no significant change", True),
     ("weak", "good", "worse", False)],
)  # fmt: skip
def test_compare_real_models_on_the_same_rows(
    models: dict, pr: str, base: str, verdict: str, passes: bool
) -> None:
    comparison = c.compare(
        side(models, pr), side(models, base), models["test"], SETTINGS, PROJECT_GATE
    )
    assert comparison.task == "regression" and comparison.base_available
    assert [m.name for m in comparison.metrics] == METRICS
    assert {m.name: m.verdict for m in comparison.metrics} == dict.fromkeys(METRICS, verdict)
    decision = c.decide_gate(comparison, PROJECT_GATE)
    assert decision.passed is passes, decision.reasons
    summary = c.comparison_summary(comparison, decision)
    assert summary["metrics"]["rmse"]["verdict"] == verdict


def test_first_regression_model_and_a_classifier_base(models: dict) -> None:
    first = c.compare(side(models, "good"), None, models["test"], SETTINGS, PROJECT_GATE)
    assert not first.base_available
    assert c.decide_gate(first, PROJECT_GATE).passed
    frame = mixed_dataset(rows=200)
    data = DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"])
    cls_schema = infer_schema(frame, data)
    classifier = to_onnx(fit_pipeline(frame, cls_schema, TrainParams()), cls_schema)
    other = c.ModelArtifacts(onnx=classifier, schema=cls_schema)
    mixed = c.compare(side(models, "good"), other, models["test"], SETTINGS, PROJECT_GATE)
    assert not mixed.base_available and "the base model is a classifier" in mixed.base_note


# ------------------------------------------------------------- the PR report


def test_report_for_a_degraded_regression_model(models: dict) -> None:
    from mlops_template.report import ReportContext, figures, render_report

    comparison = c.compare(
        side(models, "weak"), side(models, "good"), models["test"], SETTINGS, PROJECT_GATE
    )
    decision = c.decide_gate(comparison, PROJECT_GATE)
    images = figures(comparison)
    assert set(images) == {"predicted_vs_actual", "residuals"}
    assert all(png.startswith(b"\x89PNG") for _, png in images.values())
    text = render_report(
        comparison,
        decision,
        ReportContext(base_ref="main", images={k: n for k, (n, _) in images.items()}),
    )
    first = text.splitlines()[0]
    assert first.startswith("❌ **Model check failed** (gate enforced)")
    assert "`gate.max_regression.r2`" in first and "rmse" in first and "worse" in first
    assert "| rmse ↓ |" in text and "| r2 ↑ |" in text and "| mape ↓ |" in text
    assert "Confusion" not in text and "### Plots" in text
    assert "![Predicted vs actual on the test rows, base and PR](predicted_vs_actual.png)" in text
