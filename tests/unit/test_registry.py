"""Pure parts of the registry: versions, the state read from GTO tags, rollback targets and
the promotion decision (first / better / equal / worse / NaN / failed reproduction)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_template import compare as c
from mlops_template import registry as r
from mlops_template.config import GateParams
from mlops_template.model_card import CardContext, Interval, metric_intervals, render_model_card

GATE = GateParams(
    mode="enforce",
    baseline={},
    min={"roc_auc": 0.9, "balanced_accuracy": 0.85},
    max_regression={"roc_auc": 0.01, "balanced_accuracy": 0.02},
)
Row = tuple[float, float | None, float | None, float | None]  # new, prod, ci_low, ci_high


# ---------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("existing", "bump", "expected"),
    [
        ([], "minor", "v0.1.0"),
        ([], "major", "v1.0.0"),
        ([], "patch", "v0.0.1"),
        (["v0.1.0"], "minor", "v0.2.0"),
        (["v0.9.0", "v0.10.0", "v0.2.0"], "minor", "v0.11.0"),  # numeric, not string order
        (["v1.2.3"], "patch", "v1.2.4"),
        (["v1.2.3"], "major", "v2.0.0"),
        (["v1.2.3", "v0.9.9"], "minor", "v1.3.0"),
    ],
)
def test_next_version(existing: list[str], bump: r.Bump, expected: str) -> None:
    assert r.next_version(existing, bump) == expected


@pytest.mark.parametrize("bad", ["1.0.0", "v1.0", "v01.0.0", "v1.0.0-rc1", "latest"])
def test_malformed_versions_are_refused_with_the_value(bad: str) -> None:
    with pytest.raises(r.RegistryError, match=bad.replace(".", r"\.")):
        r.parse_version(bad)


def test_registration_message_round_trips_metrics_and_hashes() -> None:
    message = r.registration_message(
        "model", "v0.2.0", {"roc_auc": 0.98, "per_class": {"a": 1}}, {"model.onnx": "ab"}, "h1"
    )
    assert message.splitlines()[0] == "Register model v0.2.0 (roc_auc=0.9800)"
    assert r.parse_metadata(message) == {
        "metrics": {"roc_auc": 0.98},
        "model_sha256": {"model.onnx": "ab"},
        "dataset_hash": "h1",
    }
    assert r.parse_metadata("a message written by hand") == {}
    assert r.parse_metadata(r.METADATA_PREFIX + "{not json") == {}


# ---------------------------------------------------------------- state from tags


def tags(*specs: tuple[str, str]) -> list[r.GitTag]:
    """(tag name, commit) in creation order; one second apart, as the registry makes them."""
    return [r.GitTag(name, commit, 1000 + i) for i, (name, commit) in enumerate(specs)]


BASE_TAGS = [
    ("model@v0.1.0", "c1"),
    ("model#prod#1", "c1"),
    ("model@v0.2.0", "c2"),
    ("model@v0.3.0", "c3"),
    ("model#prod#2", "c3"),
]


def test_state_reads_versions_and_the_current_stage() -> None:
    state = r.registry_state("model", tags(*BASE_TAGS))
    assert [v.version for v in state.versions] == ["v0.1.0", "v0.2.0", "v0.3.0"]
    assert state.current() == "v0.3.0"
    assert state.at_commit("c2").version == "v0.2.0"  # type: ignore[union-attr]
    assert state.stages("v0.3.0") == ["prod"] and state.stages("v0.1.0") == []
    assert state.active("prod") == {"v0.1.0", "v0.3.0"}  # GTO keeps v0.1.0's assignment
    assert r.rollback_target(state) == ("v0.3.0", "v0.1.0")


def test_state_ignores_other_artifacts_deregistered_versions_and_foreign_stage_tags() -> None:
    state = r.registry_state(
        "model",
        tags(
            ("model@v0.1.0", "c1"),
            ("other@v5.0.0", "c2"),
            ("other#prod#1", "c2"),
            ("model@v0.2.0", "c2"),
            ("model@v0.2.0!", "c2"),  # deregistered
            ("model#prod#2", "c9"),  # a commit with no version of ours
            ("v1.0.0", "c1"),  # an ordinary release tag
        ),
    )
    assert [v.version for v in state.versions] == ["v0.1.0"]
    assert state.current() is None
    with pytest.raises(r.RegistryError, match="no version of model is in prod"):
        r.rollback_target(state)


def test_stage_order_follows_the_counter_not_the_listing_order() -> None:
    shuffled = [r.GitTag(n, c_, 5) for n, c_ in reversed(BASE_TAGS)]  # same second, any order
    state = r.registry_state("model", shuffled)
    assert [e.counter for e in state.events] == [1, 2]
    assert state.current() == "v0.3.0"


def test_rollback_moves_back_and_a_second_rollback_never_returns_to_the_bad_version() -> None:
    after_one = [*BASE_TAGS, ("model#prod!#3", "c3"), ("model#prod#4", "c1")]
    state = r.registry_state("model", tags(*after_one))
    assert state.current() == "v0.1.0"
    assert [(e.version, e.assigned) for e in state.events][-2:] == [
        ("v0.3.0", False),
        ("v0.1.0", True),
    ]
    # v0.3.0 was rolled back: it is not a target again; v0.1.0 was the first prod version.
    with pytest.raises(r.RegistryError, match=r"v0\.1\.0 is the only prod version"):
        r.rollback_target(state)
    # A newer promotion rolls back to the version it replaced (v0.1.0), not to v0.3.0.
    later = [*after_one, ("model@v0.4.0", "c4"), ("model#prod#5", "c4")]
    assert r.rollback_target(r.registry_state("model", tags(*later))) == ("v0.4.0", "v0.1.0")


def test_rollback_skips_earlier_assignments_of_the_current_version() -> None:
    state = r.registry_state(
        "model",
        tags(
            ("model@v0.1.0", "c1"),
            ("model#prod#1", "c1"),
            ("model@v0.2.0", "c2"),
            ("model#prod#2", "c2"),
            ("model#prod#3", "c1"),  # v0.1.0 assigned again (by hand)
        ),
    )
    assert r.rollback_target(state) == ("v0.1.0", "v0.2.0")


def test_waiting_for_the_next_second_uses_the_newest_tag() -> None:
    class Clock:
        def __init__(self) -> None:
            self.now = 1004.2
            self.slept = 0.0

        def time(self) -> float:
            return self.now

        def sleep(self, seconds: float) -> None:
            self.slept += seconds
            self.now += seconds

    clock = Clock()
    r.wait_for_next_second(r.registry_state("model", tags(*BASE_TAGS)), clock)  # newest: 1004
    assert 1005 <= clock.now < 1005.1 and clock.slept > 0.7
    clock.slept = 0.0
    r.wait_for_next_second(r.registry_state("model", tags(*BASE_TAGS)), clock)
    assert clock.slept == 0.0


# ---------------------------------------------------------------- the promotion decision


def comparison(metrics: dict[str, Row], base: bool = True, note: str = "") -> c.Comparison:
    rows = [
        c.MetricComparison(
            name, new, old, None if old is None else new - old, low, high, "undetermined"
        )
        for name, (new, old, low, high) in metrics.items()
    ]
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    return c.Comparison(
        classes=["a", "b"],
        y_true=np.array(["a", "b"]),
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
    )


def decide(
    cmp: c.Comparison,
    previous: str | None = "v0.1.0",
    status: r.BaseStatus = "ok",
    reason: str = "",
    gate: GateParams = GATE,
    skip_gate: bool = False,
    version: str = "v0.2.0",
) -> r.PromotionDecision:
    decision = c.decide_gate(cmp, gate)
    return r.decide_promotion(
        version, previous, status, reason, cmp.metrics, decision, cmp.base_available, skip_gate
    )


BETTER = {"roc_auc": (0.97, 0.95, 0.005, 0.035), "balanced_accuracy": (0.93, 0.90, 0.01, 0.05)}
EQUAL_NOISE = {
    "roc_auc": (0.95, 0.951, -0.012, 0.009),  # interval crosses the allowed drop: not "real"
    "balanced_accuracy": (0.90, 0.905, -0.03, 0.02),
}
WORSE = {"roc_auc": (0.91, 0.97, -0.08, -0.03), "balanced_accuracy": (0.88, 0.93, -0.09, -0.03)}


def test_a_better_model_is_promoted_with_the_gate_rules_as_reasons() -> None:
    decision = decide(comparison(BETTER))
    assert decision.promoted and decision.kind == "gate"
    assert decision.reasons[0] == "the gate passed against prod v0.1.0"
    assert any(reason.startswith("gate.max_regression.roc_auc") for reason in decision.reasons)
    assert decision.to_json() == {
        "promoted": True,
        "version": "v0.2.0",
        "previous": "v0.1.0",
        "reasons": decision.reasons,
        "kind": "gate",
    }


def test_an_equal_within_noise_model_follows_the_gate() -> None:
    cmp = comparison(EQUAL_NOISE)
    assert c.decide_gate(cmp, GATE).passed
    assert decide(cmp).promoted
    strict = GateParams(
        baseline={}, min=GATE.min, max_regression={"roc_auc": 0.0, "balanced_accuracy": 0.0}
    )
    assert c.decide_gate(cmp, strict).passed  # noise: the interval still contains 0
    worse_by_noise = comparison({**EQUAL_NOISE, "roc_auc": (0.95, 0.951, -0.02, -0.011)})
    assert not decide(worse_by_noise).promoted  # a real drop beyond 0.01 is refused


def test_a_worse_model_is_refused_naming_the_rules() -> None:
    decision = decide(comparison(WORSE))
    assert not decision.promoted and decision.previous == "v0.1.0"
    assert [reason.split(":")[0] for reason in decision.reasons] == [
        "gate.max_regression.roc_auc",
        "gate.max_regression.balanced_accuracy",
    ]


def test_the_first_model_is_promoted_when_it_meets_the_minimums() -> None:
    first = comparison({k: (v[0], None, None, None) for k, v in BETTER.items()}, base=False)
    decision = decide(first, previous=None, status="none")
    assert decision.promoted and decision.kind == "first" and decision.previous is None
    assert decision.reasons[0].startswith("first model")
    below = comparison(
        {"roc_auc": (0.8, None, None, None), "balanced_accuracy": (0.9, None, None, None)},
        base=False,
    )
    refused = decide(below, previous=None, status="none")
    assert not refused.promoted
    assert refused.reasons == ["gate.min.roc_auc: PR roc_auc 0.8000 is below the minimum 0.9"]


def test_a_nan_metric_is_refused_even_if_no_gate_rule_reads_it() -> None:
    cmp = comparison({**BETTER, "log_loss": (math.nan, 0.2, None, None)})
    assert c.decide_gate(cmp, GATE).passed  # the gate does not judge log_loss here
    decision = decide(cmp)
    assert not decision.promoted
    assert decision.reasons == ["log_loss of v0.2.0 is undefined (NaN) on the test set; refused"]


def test_a_nan_gate_metric_is_refused() -> None:
    cmp = comparison({**BETTER, "roc_auc": (math.nan, 0.95, None, None)})
    decision = decide(cmp)
    assert not decision.promoted and "roc_auc of v0.2.0 is undefined" in decision.reasons[0]


def test_a_failed_reproduction_of_prod_is_refused_with_its_reason() -> None:
    cmp = comparison({k: (v[0], None, None, None) for k, v in BETTER.items()}, base=False)
    decision = decide(cmp, status="failed", reason="dvc repro of c1 failed: boom")
    assert not decision.promoted
    assert decision.reasons == [
        "production version v0.1.0 could not be reproduced (failed): dvc repro of c1 failed: "
        "boom; refused (no like-for-like comparison)"
    ]
    incomparable = decide(cmp, status="ok", reason="other classes")
    assert not incomparable.promoted and "cannot be scored" in incomparable.reasons[0]


def test_warn_mode_does_not_let_a_worse_model_into_prod() -> None:
    decision = decide(comparison(WORSE), gate=GateParams(**{**GATE.model_dump(), "mode": "warn"}))
    assert not decision.promoted
    assert "promotion to prod always requires the gate" in decision.reasons[-1]


def test_already_prod_and_manual_promotion() -> None:
    again = decide(comparison(WORSE), previous="v0.2.0")
    assert again.promoted and again.kind == "already"
    manual = decide(comparison(WORSE), skip_gate=True)
    assert manual.promoted and manual.kind == "manual"
    assert "the gate would have refused it: gate.max_regression.roc_auc" in manual.reasons[0]


# ---------------------------------------------------------------- model card


def test_intervals_bracket_the_point_value_and_match_compute_metrics() -> None:
    from mlops_template.evaluate import compute_metrics

    rng = np.random.default_rng(0)
    y = np.array(["a", "b"])[rng.integers(0, 2, 300)]
    p_b = np.clip((y == "b") * 0.6 + rng.uniform(0, 0.4, 300), 0, 1)
    proba = np.column_stack([1 - p_b, p_b])
    found = metric_intervals(y, ["a", "b"], proba, ["roc_auc", "log_loss"], 500, 0.9, 3)
    point = compute_metrics(y, proba, ["a", "b"])
    for name, interval in found.items():
        assert interval.value == pytest.approx(point[name])
        assert interval.low is not None and interval.high is not None
        assert interval.low <= interval.value <= interval.high
    single = metric_intervals(np.array(["a"] * 5), ["a", "b"], proba[:5], ["roc_auc"], 200, 0.9, 3)
    assert math.isnan(single["roc_auc"].value) and single["roc_auc"].low is None


def test_card_names_version_decision_data_and_comparison() -> None:
    cmp = comparison(BETTER)
    gate = c.decide_gate(cmp, GATE)
    schema = {
        "rows": 10,
        "target": "y",
        "task": "binary",
        "classes": ["a", "b"],
        "class_counts": {"a": 6, "b": 4},
        "dataset_hash": "d1",
        "features": [
            {"name": "x", "kind": "numeric", "min": 0.0, "max": 1.0, "missing_fraction": 0.1},
            {"name": "color", "kind": "categorical", "levels": ["red", "blue"]},
        ],
    }
    card = render_model_card(
        CardContext(
            name="model",
            version="v0.2.0",
            commit="c2" * 20,
            promoted=True,
            decision_reasons=["the gate passed against prod v0.1.0"],
            previous="v0.1.0",
            previous_commit="c1" * 20,
            schema=schema,
            params={"data": {"source": "sklearn:iris"}, "split": {"test_size": 0.25}},
            train_info={
                "model": "random_forest",
                "seed": 1,
                "train_rows": 8,
                "hyperparameters": {"n_estimators": 10},
            },
            model_sha256={"model.onnx": "ab12"},
            intervals={"roc_auc": Interval(0.97, 0.95, 0.99)},
            test_rows=2,
            resamples=1000,
            confidence=0.95,
            comparison=cmp,
            gate=gate,
        )
    )
    assert card.splitlines()[0] == "# Model card: model v0.2.0 (promoted to production)"
    for expected in (
        "| a | 6 | 60.0% |",
        "| x | numeric | 0.0000 … 1.0000 | 10.0% |",
        "| color | categorical | red, blue | 0.0% |",
        "| `train.random_forest.n_estimators` | `10` |",
        "| roc_auc ↑ | 0.9700 | [0.9500, 0.9900] |",
        "| roc_auc ↑ | 0.9500 | 0.9700 | +0.0200 | [+0.0050, +0.0350] | undetermined |",
        "| `gate.max_regression.roc_auc` | pass:",
        "`sklearn:iris` is a demonstration dataset",
        "| model.onnx | `ab12` |",
    ):
        assert expected in card, expected
