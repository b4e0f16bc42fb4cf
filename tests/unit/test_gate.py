"""The quality gate is a pure function: every case of the decision, named by its rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_template import compare as c
from mlops_template.config import CompareParams, GateParams

Row = tuple[float, float | None, float | None, float | None]  # pr, base, ci_low, ci_high


def comparison(
    metrics: dict[str, Row],
    base: bool = True,
    note: str = "",
    baselines: dict[str, dict[str, float | None]] | None = None,
    baseline_note: str = "",
) -> c.Comparison:
    """A comparison with the given metric values (the rest is irrelevant to the gate)."""
    rows = []
    for name, (pr, base_value, low, high) in metrics.items():
        delta = None if base_value is None else pr - base_value
        rows.append(c.MetricComparison(name, pr, base_value, delta, low, high, "undetermined"))
    y = np.array(["a", "b"])
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    return c.Comparison(
        classes=["a", "b"],
        y_true=y,
        outputs_pr=proba,
        outputs_base=proba if base else None,
        metrics=rows,
        base_available=base,
        base_note=note,
        fed_missing=[],
        data=c.data_diff(None, {"target": "t", "features": []}, 2, None),
        params=[],
        validation_pr=c.ValidationSummary(True, 1, []),
        validation_base=None,
        confusion_pr=[[1, 0], [0, 1]],
        confusion_base=[[1, 0], [0, 1]] if base else None,
        resamples=1000,
        confidence=0.95,
        seed=7,
        bootstrap_seconds=0.0,
        baselines=baselines,
        baseline_note=baseline_note,
    )


# The absolute-floor gate (gate.min), with no baseline rules.
GATE = GateParams(
    mode="enforce",
    baseline={},
    min={"roc_auc": 0.9, "balanced_accuracy": 0.85},
    max_regression={"roc_auc": 0.01, "balanced_accuracy": 0.02},
)


def failed_rules(decision: c.GateDecision) -> list[str]:
    return [r.rule for r in decision.rules if not r.passed]


def test_better_model_passes() -> None:
    decision = c.decide_gate(
        comparison(
            {
                "roc_auc": (0.97, 0.95, 0.005, 0.035),
                "balanced_accuracy": (0.93, 0.90, 0.01, 0.05),
            }
        ),
        GATE,
    )
    assert decision.passed and not decision.blocking and decision.reasons == []
    assert len(decision.rules) == 4 and failed_rules(decision) == []
    assert decision.to_json() == {"passed": True, "mode": "enforce", "reasons": []}


def test_equal_model_passes() -> None:
    decision = c.decide_gate(
        comparison({"roc_auc": (0.95, 0.95, 0.0, 0.0), "balanced_accuracy": (0.9, 0.9, 0.0, 0.0)}),
        GATE,
    )
    assert decision.passed and decision.reasons == []


def test_worse_model_fails_the_regression_rule_and_names_it() -> None:
    decision = c.decide_gate(
        comparison(
            {
                "roc_auc": (0.92, 0.98, -0.09, -0.03),
                "balanced_accuracy": (0.90, 0.90, -0.01, 0.01),
            }
        ),
        GATE,
    )
    assert not decision.passed and decision.blocking
    assert failed_rules(decision) == ["gate.max_regression.roc_auc"]
    assert len(decision.reasons) == 1
    reason = decision.reasons[0]
    assert reason.startswith("gate.max_regression.roc_auc:")
    assert "0.9800" in reason and "0.9200" in reason and "0.01" in reason
    assert decision.to_json()["passed"] is False


@pytest.mark.parametrize(
    ("low", "high", "passes"),
    [
        (-0.03, -0.005, True),  # could be within the allowed drop: not proven beyond it
        (-0.009, -0.002, True),  # a real drop, but smaller than allowed
        (-0.05, -0.0101, False),  # the whole interval is beyond the allowed drop
        (-0.05, -0.01, True),  # touching the limit is not beyond it
    ],
)
def test_regression_is_judged_on_the_whole_interval(low: float, high: float, passes: bool) -> None:
    decision = c.decide_gate(
        comparison({"roc_auc": (0.95, 0.97, low, high)}),
        GateParams(baseline={}, min={}, max_regression={"roc_auc": 0.01}),
    )
    assert decision.passed is passes


def test_minimum_fails_even_without_a_regression() -> None:
    decision = c.decide_gate(
        comparison(
            {
                "roc_auc": (0.88, 0.87, -0.01, 0.03),
                "balanced_accuracy": (0.90, 0.90, 0.0, 0.0),
            }
        ),
        GATE,
    )
    assert failed_rules(decision) == ["gate.min.roc_auc"]
    assert "below the minimum 0.9" in decision.reasons[0]


def test_log_loss_minimum_is_a_ceiling_and_its_regression_is_a_rise() -> None:
    gate = GateParams(baseline={}, min={"log_loss": 0.3}, max_regression={"log_loss": 0.05})
    ok = c.decide_gate(comparison({"log_loss": (0.2, 0.25, -0.1, 0.0)}), gate)
    assert ok.passed
    too_high = c.decide_gate(comparison({"log_loss": (0.35, 0.34, -0.02, 0.04)}), gate)
    assert failed_rules(too_high) == ["gate.min.log_loss"]
    assert "above the maximum 0.3" in too_high.reasons[0]
    rose = c.decide_gate(comparison({"log_loss": (0.29, 0.1, 0.06, 0.3)}), gate)
    assert failed_rules(rose) == ["gate.max_regression.log_loss"]
    assert "rose" in rose.reasons[0]
    lower_is_fine = c.decide_gate(comparison({"log_loss": (0.1, 0.29, -0.3, -0.06)}), gate)
    assert lower_is_fine.passed


def test_nan_metric_is_refused_with_a_reason() -> None:
    nan = math.nan
    decision = c.decide_gate(
        comparison({"roc_auc": (nan, 0.95, None, None), "balanced_accuracy": (0.9, 0.9, 0.0, 0.0)}),
        GATE,
    )
    assert not decision.passed
    assert failed_rules(decision) == ["gate.min.roc_auc", "gate.max_regression.roc_auc"]
    assert "undefined" in decision.reasons[0] and "refused" in decision.reasons[0]
    base_nan = c.decide_gate(
        comparison({"roc_auc": (0.95, nan, None, None)}),
        GateParams(baseline={}, min={}, max_regression={"roc_auc": 0.01}),
    )
    assert failed_rules(base_nan) == ["gate.max_regression.roc_auc"]
    assert "cannot judge" in base_nan.reasons[0]


def test_undefined_interval_is_refused() -> None:
    decision = c.decide_gate(
        comparison({"roc_auc": (0.95, 0.96, None, None)}),
        GateParams(baseline={}, min={}, max_regression={"roc_auc": 0.01}),
    )
    assert failed_rules(decision) == ["gate.max_regression.roc_auc"]
    assert "interval" in decision.reasons[0]


def test_missing_base_applies_only_the_minimums() -> None:
    first = comparison(
        {"roc_auc": (0.95, None, None, None), "balanced_accuracy": (0.9, None, None, None)},
        base=False,
        note="main has no dvc.yaml: no base model",
    )
    decision = c.decide_gate(first, GATE)
    assert decision.passed
    assert [r.rule for r in decision.rules] == ["gate.min.roc_auc", "gate.min.balanced_accuracy"]
    assert decision.notes and "only the minimums apply" in decision.notes[0]
    assert "no dvc.yaml" in decision.notes[0]
    weak = comparison({"roc_auc": (0.7, None, None, None)}, base=False)
    assert failed_rules(c.decide_gate(weak, GATE)) == [
        "gate.min.roc_auc",
        "gate.min.balanced_accuracy",  # not computed: refused, never silently skipped
    ]


def test_warn_mode_reports_but_does_not_block() -> None:
    gate = GateParams(
        mode="warn", baseline={}, min={"roc_auc": 0.9}, max_regression={"roc_auc": 0.01}
    )
    decision = c.decide_gate(comparison({"roc_auc": (0.8, 0.98, -0.25, -0.1)}), gate)
    assert not decision.passed and not decision.blocking
    assert decision.to_json() == {
        "passed": False,
        "mode": "warn",
        "reasons": decision.reasons,
    }
    assert failed_rules(decision) == ["gate.min.roc_auc", "gate.max_regression.roc_auc"]


def test_no_rules_pass() -> None:
    decision = c.decide_gate(
        comparison({"roc_auc": (0.5, 0.9, -0.5, -0.3)}),
        GateParams(baseline={}, min={}, max_regression={}),
    )
    assert decision.passed and decision.rules == []


def test_gate_on_a_real_comparison_of_a_model_with_itself() -> None:
    rng = np.random.default_rng(0)
    y = np.where(rng.random(200) < 0.4, "yes", "no")
    score = np.clip((y == "yes") * 0.6 + rng.normal(0.2, 0.2, 200), 0.01, 0.99)
    proba = np.column_stack([1 - score, score])
    metrics = c.compare_metrics(
        y, ["no", "yes"], proba, proba, ["roc_auc", "balanced_accuracy"], 300, 0.95, 7
    )
    same = comparison({m.name: (m.pr, m.base, m.ci_low, m.ci_high) for m in metrics})
    assert c.decide_gate(
        same, GateParams(baseline={}, min={"roc_auc": 0.5}, max_regression={"roc_auc": 0.0})
    ).passed
    assert c.metrics_to_compare(CompareParams(metrics=["roc_auc"]), GATE) == [
        "roc_auc",
        "balanced_accuracy",
    ]


# ---------------------------------------------------------------- baseline-relative floors

# The shipped kind of gate: relative to the pipeline's baselines, no absolute floor.
RELATIVE = GateParams(
    baseline={
        "majority": {"roc_auc": 0.05, "balanced_accuracy": 0.05},
        "linear": {"roc_auc": -0.05},
    },
    min={},
    max_regression={"roc_auc": 0.01},
)
BASELINES = {
    "majority": {"roc_auc": 0.5, "balanced_accuracy": 1 / 7},
    "linear": {"roc_auc": 0.74, "balanced_accuracy": 0.30},
}


def test_default_gate_is_relative_to_the_baselines() -> None:
    shipped = GateParams()
    assert shipped.min == {} and set(shipped.baseline) == {"majority", "linear"}


def test_better_than_the_baselines_passes_where_absolute_floors_fail() -> None:
    """A 7-class survey model at roc_auc 0.756: below the old 0.9 floor, yet useful."""
    first = comparison(
        {"roc_auc": (0.756, None, None, None), "balanced_accuracy": (0.31, None, None, None)},
        base=False,
        baselines=BASELINES,
    )
    decision = c.decide_gate(first, RELATIVE)
    assert decision.passed, decision.reasons
    assert [r.rule for r in decision.rules] == [
        "gate.baseline.majority.roc_auc",
        "gate.baseline.majority.balanced_accuracy",
        "gate.baseline.linear.roc_auc",
    ]
    assert "+0.2560 better" in decision.rules[0].detail
    assert failed_rules(c.decide_gate(first, GATE)) == [
        "gate.min.roc_auc",
        "gate.min.balanced_accuracy",
    ]


def test_equal_to_the_baseline_plus_margin_passes() -> None:
    gate = GateParams(baseline={"majority": {"roc_auc": 0.05}}, min={}, max_regression={})
    exact = comparison({"roc_auc": (0.55, None, None, None)}, baselines=BASELINES)
    assert c.decide_gate(exact, gate).passed
    equal_to_linear = comparison({"roc_auc": (0.74, None, None, None)}, baselines=BASELINES)
    no_margin = GateParams(baseline={"linear": {"roc_auc": 0.0}}, min={}, max_regression={})
    assert c.decide_gate(equal_to_linear, no_margin).passed


def test_worse_than_a_baseline_fails_naming_the_rule_and_both_values() -> None:
    weak = comparison(
        {"roc_auc": (0.66, 0.68, -0.05, 0.01), "balanced_accuracy": (0.20, 0.2, 0, 0)},
        baselines=BASELINES,
    )
    decision = c.decide_gate(weak, RELATIVE)
    assert failed_rules(decision) == ["gate.baseline.linear.roc_auc"]
    reason = decision.reasons[0]
    assert reason.startswith("gate.baseline.linear.roc_auc:")
    assert "0.6600" in reason and "0.7400" in reason and "-0.0800" in reason
    assert "may trail it by at most 0.05" in reason
    chance = comparison(
        {"roc_auc": (0.52, None, None, None), "balanced_accuracy": (0.15, None, None, None)},
        base=False,
        baselines=BASELINES,
    )
    assert failed_rules(c.decide_gate(chance, RELATIVE)) == [
        "gate.baseline.majority.roc_auc",
        "gate.baseline.majority.balanced_accuracy",
        "gate.baseline.linear.roc_auc",
    ]


def test_log_loss_baseline_margin_means_lower() -> None:
    gate = GateParams(baseline={"majority": {"log_loss": 0.1}}, min={}, max_regression={})
    prior = {"majority": {"log_loss": 0.66}}
    assert c.decide_gate(
        comparison({"log_loss": (0.3, None, None, None)}, baselines=prior), gate
    ).passed
    worse = c.decide_gate(comparison({"log_loss": (0.6, None, None, None)}, baselines=prior), gate)
    assert failed_rules(worse) == ["gate.baseline.majority.log_loss"]
    assert "+0.0600 better" in worse.reasons[0]


def test_nan_against_a_baseline_is_refused() -> None:
    nan_pr = comparison({"roc_auc": (math.nan, None, None, None)}, base=False, baselines=BASELINES)
    gate = GateParams(baseline={"majority": {"roc_auc": 0.05}}, min={}, max_regression={})
    decision = c.decide_gate(nan_pr, gate)
    assert failed_rules(decision) == ["gate.baseline.majority.roc_auc"]
    assert "undefined" in decision.reasons[0] and "refused" in decision.reasons[0]
    nan_baseline = comparison(
        {"roc_auc": (0.9, None, None, None)}, baselines={"majority": {"roc_auc": None}}
    )
    refused = c.decide_gate(nan_baseline, gate)
    assert (
        not refused.passed
        and "majority-class baseline's roc_auc is undefined" in (refused.reasons[0])
    )


def test_missing_baseline_is_refused_with_its_reason() -> None:
    gate = GateParams(baseline={"linear": {"roc_auc": -0.05}}, min={}, max_regression={})
    none = comparison(
        {"roc_auc": (0.9, None, None, None)},
        base=False,
        baselines=None,
        baseline_note="no baseline was computed (eval/baseline.json is missing: run dvc repro)",
    )
    decision = c.decide_gate(none, gate)
    assert failed_rules(decision) == ["gate.baseline.linear.roc_auc"]
    assert "eval/baseline.json is missing" in decision.reasons[0]


def test_baselines_are_used_only_on_the_same_test_rows() -> None:
    import pandas as pd

    from mlops_template.data import frame_hash

    test = pd.DataFrame({"x": [1.0, 2.0, 3.0], "target": ["a", "b", "a"]})
    record = {"test_rows": 3, "test_hash": frame_hash(test), "models": BASELINES}
    assert c.baselines_on(record, test) == (BASELINES, "")
    other = test.assign(x=[1.0, 2.0, 4.0])
    found, why = c.baselines_on(record, other)
    assert found is None and "other test rows" in why
    assert c.baselines_on(None, test)[0] is None
    assert "missing" in c.baselines_on(None, test)[1]
    assert c.metrics_to_compare(CompareParams(metrics=["accuracy"]), RELATIVE) == [
        "accuracy",
        "roc_auc",
        "balanced_accuracy",
    ]
