"""The quality gate is a pure function: every case of the decision, named by its rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_template import compare as c
from mlops_template.config import CompareParams, GateParams

Row = tuple[float, float | None, float | None, float | None]  # pr, base, ci_low, ci_high


def comparison(metrics: dict[str, Row], base: bool = True, note: str = "") -> c.Comparison:
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
        proba_pr=proba,
        proba_base=proba if base else None,
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
    )


GATE = GateParams(
    mode="enforce",
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
        GateParams(min={}, max_regression={"roc_auc": 0.01}),
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
    gate = GateParams(min={"log_loss": 0.3}, max_regression={"log_loss": 0.05})
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
        GateParams(min={}, max_regression={"roc_auc": 0.01}),
    )
    assert failed_rules(base_nan) == ["gate.max_regression.roc_auc"]
    assert "cannot judge" in base_nan.reasons[0]


def test_undefined_interval_is_refused() -> None:
    decision = c.decide_gate(
        comparison({"roc_auc": (0.95, 0.96, None, None)}),
        GateParams(min={}, max_regression={"roc_auc": 0.01}),
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
    gate = GateParams(mode="warn", min={"roc_auc": 0.9}, max_regression={"roc_auc": 0.01})
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
        comparison({"roc_auc": (0.5, 0.9, -0.5, -0.3)}), GateParams(min={}, max_regression={})
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
        same, GateParams(min={"roc_auc": 0.5}, max_regression={"roc_auc": 0.0})
    ).passed
    assert c.metrics_to_compare(CompareParams(metrics=["roc_auc"]), GATE) == [
        "roc_auc",
        "balanced_accuracy",
    ]
