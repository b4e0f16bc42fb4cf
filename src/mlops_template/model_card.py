"""The model card of a registered version: `reports/deploy/model_card.md`.

Written by `registry promote` for every version it judges (promoted or not) and attached
to the GitHub Release of a deployed version. Everything in it is computed, nothing is
typed by hand: the data summary comes from `data/schema.json`, the parameters from
`params.yaml` and `models/train_info.json`, the metrics and their intervals from the same
paired bootstrap as the pull-request comparison (`compare.bootstrap_metrics`, on the
candidate's test set), and the comparison with the previous production version from
`compare.compare` (both models scored on the same rows). "Intended use" and "Limits"
state what the pipeline can vouch for; a project adds its own context to that section.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_template.config import flatten
from mlops_template.evaluate import HIGHER_IS_BETTER

SCHEMA_FEATURES_SHOWN = 60  # longer feature lists are cut in the card (the schema has all)


@dataclass(frozen=True)
class Interval:
    value: float
    low: float | None
    high: float | None


def metric_intervals(
    y_true: np.ndarray,
    classes: list[str],
    proba: np.ndarray,
    metrics: Sequence[str],
    resamples: int,
    confidence: float,
    seed: int,
    task: str = "classification",
) -> dict[str, Interval]:
    """Each metric with its percentile bootstrap interval (the comparison's resamples).
    Regression (`task`): PROBA holds the predicted values; mape is NaN when undefined."""
    from mlops_template.compare import (
        MIN_VALID_RESAMPLE_FRACTION,
        bootstrap_metrics,
        bootstrap_regression_metrics,
    )
    from mlops_template.evaluate import compute_metrics, compute_regression_metrics

    if task == "regression":
        values = compute_regression_metrics(y_true, proba)
        point = {m: values.get(m, math.nan) for m in metrics}
        (boot,) = bootstrap_regression_metrics(y_true, [proba], metrics, resamples, seed)
    else:
        point = compute_metrics(y_true, proba, classes)
        (boot,) = bootstrap_metrics(y_true, classes, [proba], metrics, resamples, seed)
    alpha = 1.0 - confidence
    out = {}
    for name in metrics:
        valid = boot[name][np.isfinite(boot[name])]
        low = high = None
        if math.isfinite(point[name]) and len(valid) >= MIN_VALID_RESAMPLE_FRACTION * resamples:
            low, high = (float(v) for v in np.quantile(valid, [alpha / 2, 1 - alpha / 2]))
        out[name] = Interval(float(point[name]), low, high)
    return out


@dataclass(frozen=True)
class CardContext:
    name: str  # the GTO artifact name
    version: str
    commit: str
    promoted: bool
    decision_reasons: list[str]
    previous: str | None  # prod version compared with (None: first model)
    previous_commit: str | None
    schema: dict[str, Any]
    params: dict[str, Any]  # params.yaml as written
    train_info: dict[str, Any]
    model_sha256: dict[str, str]
    intervals: dict[str, Interval]
    test_rows: int
    resamples: int
    confidence: float
    comparison: Any = None  # compare.Comparison (None when the prod model was not scored)
    gate: Any = None  # compare.GateDecision
    base_note: str = ""
    validation: dict[str, Any] | None = None
    run_url: str | None = None
    notes: list[str] = field(default_factory=list)


def _num(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def _signed(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.4f}"


def _arrow(metric: str) -> str:
    return "↑" if HIGHER_IS_BETTER.get(metric, True) else "↓"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _value(value: Any) -> str:
    """A parameter as params.yaml spells it (null, true, 0.25, text)."""
    return _cell(value if isinstance(value, str) else json.dumps(value))


def _data_section(ctx: CardContext) -> list[str]:
    schema = ctx.schema
    features = schema.get("features", [])
    numeric = [f for f in features if f.get("kind") == "numeric"]
    categorical = [f for f in features if f.get("kind") == "categorical"]
    counts = schema.get("class_counts", {})
    total = sum(counts.values()) or None
    source = (ctx.params.get("data") or {}).get("source", "n/a")
    lines = [
        "## Data",
        "",
        f"- Source: `{source}` (`data.source`), {schema.get('rows', 'n/a')} rows after "
        f"validation; dataset sha256 `{schema.get('dataset_hash', 'n/a')}`.",
        (
            f"- Task: regression of `{schema.get('target')}` (a number per row)"
            if schema.get("task") == "regression"
            else f"- Task: {schema.get('task', 'classification')} classification of "
            f"`{schema.get('target')}`"
        )
        + f"; {len(features)} features ({len(numeric)} numeric, "
        f"{len(categorical)} categorical).",
        f"- Training rows: {ctx.train_info.get('train_rows', 'n/a')}; test rows: "
        f"{ctx.test_rows} (`split.test_size`: "
        f"{(ctx.params.get('split') or {}).get('test_size', 'n/a')}).",
    ]
    if schema.get("id_columns") or schema.get("dropped_columns"):
        lines.append(
            f"- Kept out of the features: {', '.join(schema.get('id_columns', []))} "
            f"{', '.join(schema.get('dropped_columns', []))}".rstrip()
        )
    if ctx.validation is not None:
        checks = len(ctx.validation.get("checks", []))
        failures = ctx.validation.get("failures", [])
        status = "passed" if ctx.validation.get("passed") else "FAILED"
        lines.append(f"- Validation: {status} ({checks} checks, {len(failures)} failures).")
    lines += ["", "| Class | Rows | Share |", "|---|---:|---:|"]
    for label, count in counts.items():
        share = f"{count / total:.1%}" if total else "n/a"
        lines.append(f"| {_cell(label)} | {count} | {share} |")
    lines += [
        "",
        "<details><summary>Features (from data/schema.json)</summary>",
        "",
        "| Feature | Kind | Range / levels | Missing |",
        "|---|---|---|---:|",
    ]
    for feature in features[:SCHEMA_FEATURES_SHOWN]:
        if feature.get("kind") == "numeric":
            values = f"{_num(feature.get('min'), 4)} … {_num(feature.get('max'), 4)}"
        else:
            levels = [str(v) for v in feature.get("levels", [])]
            values = ", ".join(levels[:8]) + (f" (+{len(levels) - 8})" if len(levels) > 8 else "")
        lines.append(
            f"| {_cell(feature.get('name'))} | {feature.get('kind')} | {_cell(values)} | "
            f"{feature.get('missing_fraction', 0.0):.1%} |"
        )
    if len(features) > SCHEMA_FEATURES_SHOWN:
        lines.append(f"| … {len(features) - SCHEMA_FEATURES_SHOWN} more | | | |")
    lines += ["", "</details>", ""]
    return lines


def _params_section(ctx: CardContext) -> list[str]:
    train = ctx.train_info
    lines = [
        "## Parameters",
        "",
        f"Model `{train.get('model', 'n/a')}` (seed {train.get('seed', 'n/a')}), exported to "
        "ONNX; the served file's sha256 is checked before it is promoted or published.",
        "",
        "| Parameter | Value |",
        "|---|---|",
    ]
    # user_model.py's changes (train.custom_steps_record): before the table
    custom = []
    if train.get("estimator"):
        custom.append(f"Estimator `{train['estimator']}` (src/mlops_template/user_model.py).")
    for step in train.get("feature_steps") or []:
        adds = ", ".join(f"`{c}`" for c in step.get("adds", []))
        custom.append(f"Feature step `{step.get('name')}` (`{step.get('class')}`) adds {adds}.")
    if custom:
        lines[4:4] = [*custom, ""]
    for key, value in sorted((train.get("hyperparameters") or {}).items()):
        lines.append(f"| `train.{train.get('model')}.{key}` | `{_value(value)}` |")
    shown = {
        k: v
        for k, v in flatten(ctx.params).items()
        if k.split(".")[0] in ("data", "split", "evaluate")
    }
    for key, value in sorted(shown.items()):
        lines.append(f"| `{key}` | `{_value(value)}` |")
    parity = train.get("parity") or {}
    if parity:
        lines += [
            "",
            f"ONNX vs scikit-learn on {parity.get('rows', 'n/a')} test rows: "
            f"{parity.get('label_mismatches', 'n/a')} label mismatches, max probability "
            f"difference {parity.get('max_probability_difference', float('nan')):.2e} "
            f"(tolerance {parity.get('tolerance', 'n/a')}).",
        ]
    lines += [
        "",
        "| File | sha256 |",
        "|---|---|",
        *[f"| {name} | `{digest}` |" for name, digest in sorted(ctx.model_sha256.items())],
        "",
    ]
    return lines


def _metrics_section(ctx: CardContext) -> list[str]:
    level = f"{ctx.confidence:.0%}"
    lines = [
        "## Metrics",
        "",
        f"On the {ctx.test_rows} held-out test rows; {level} percentile bootstrap intervals "
        f"({ctx.resamples} resamples).",
        "",
        f"| Metric | Value | {level} interval |",
        "|---|---:|---|",
    ]
    for name, interval in ctx.intervals.items():
        span = (
            f"[{_num(interval.low)}, {_num(interval.high)}]"
            if interval.low is not None and interval.high is not None
            else "undefined"
        )
        lines.append(f"| {name} {_arrow(name)} | {_num(interval.value)} | {span} |")
    lines.append("")
    return lines


def _comparison_section(ctx: CardContext) -> list[str]:
    lines = ["## Comparison with the previous production version", ""]
    comparison = ctx.comparison
    if ctx.previous is None:
        lines += ["None: this is the first model of the registry.", ""]
    elif comparison is None or not comparison.base_available:
        lines += [
            f"Production was {ctx.previous}, but its model was not scored on this test set: "
            f"{ctx.base_note or 'no reason given'}.",
            "",
        ]
    else:
        level = f"{comparison.confidence:.0%}"
        commit = f" (`{ctx.previous_commit[:12]}`)" if ctx.previous_commit else ""
        lines += [
            f"{ctx.previous}{commit}, reproduced from its commit and scored on the same "
            f"{len(comparison.y_true)} test rows; Δ = {ctx.version} − {ctx.previous} with the "
            f"{level} interval of the paired bootstrap.",
            "",
            f"| Metric | {ctx.previous} | {ctx.version} | Δ | {level} interval of Δ | Verdict |",
            "|---|---:|---:|---:|---|---|",
        ]
        for m in comparison.metrics:
            span = (
                f"[{_signed(m.ci_low)}, {_signed(m.ci_high)}]"
                if m.ci_low is not None and m.ci_high is not None
                else "undefined"
            )
            lines.append(
                f"| {m.name} {_arrow(m.name)} | {_num(m.base)} | {_num(m.pr)} | "
                f"{_signed(m.delta)} | {span} | {m.verdict} |"
            )
        if comparison.params:
            changed = ", ".join(f"`{c.key}`" for c in comparison.params[:12])
            more = f" (+{len(comparison.params) - 12})" if len(comparison.params) > 12 else ""
            lines += ["", f"Parameters changed since {ctx.previous}: {changed}{more}."]
        if comparison.data.changed:
            lines += ["", f"The data changed since {ctx.previous} (dataset hash or schema)."]
        lines.append("")
    if ctx.gate is not None:
        lines += ["| Gate rule | Result |", "|---|---|"]
        for rule in ctx.gate.rules:
            lines.append(
                f"| `{rule.rule}` | {'pass' if rule.passed else 'FAIL'}: {_cell(rule.detail)} |"
            )
        lines += [*(f"\n_{note}_" for note in ctx.gate.notes), ""]
    return lines


def _use_section(ctx: CardContext) -> list[str]:
    schema = ctx.schema
    classes = ", ".join(f"`{c}`" for c in schema.get("classes", []))
    source = str((ctx.params.get("data") or {}).get("source", ""))
    tolerance = (ctx.train_info.get("parity") or {}).get("tolerance")
    if schema.get("task") == "regression":
        stats = schema.get("target_stats") or {}
        what = (
            f"predicts `{schema.get('target')}` (training range {stats.get('min')} to "
            f"{stats.get('max')}) for tabular records with the "
            f"{len(schema.get('features', []))} features above"
        )
        caution = (
            "Predictions outside the training range are extrapolations; judge errors in "
            "the target's units (rmse, mae above)."
        )
    else:
        what = (
            f"scores tabular records with the {len(schema.get('features', []))} features "
            f"above into {classes}"
        )
        caution = (
            "Decisions built on its probabilities should use a threshold chosen for their "
            "own costs of errors."
        )
    lines = [
        "## Intended use",
        "",
        f"{what[0].upper()}{what[1:]}, through the serving API (`POST /predict`) or the ONNX "
        "file, for records drawn from the same population and collection process as the "
        f"training data. {caution}",
        "",
        "## Limits",
        "",
        f"- Measured on {ctx.test_rows} held-out rows only: the intervals above are the "
        "uncertainty of these numbers; groups within the data were not evaluated separately.",
        "- Values outside the training ranges and categories never seen in training are "
        "accepted by the API but are extrapolation; the drift monitor reports them.",
        "- Probabilities are the model's scores, not calibrated frequencies.",
    ]
    if tolerance is not None:
        lines.append(
            f"- The served ONNX model computes in float32: its probabilities agree with the "
            f"scikit-learn model within {tolerance}."
        )
    if source.startswith("sklearn:"):
        lines.append(
            f"- `{source}` is a demonstration dataset shipped with scikit-learn: this model "
            "demonstrates the template and must not be used for real decisions."
        )
    lines += [f"- {note}" for note in ctx.notes]
    lines.append("")
    return lines


def render_model_card(ctx: CardContext) -> str:
    """The card as markdown; the first line names the version and the decision."""
    verdict = "promoted to production" if ctx.promoted else "not promoted"
    lines = [
        f"# Model card: {ctx.name} {ctx.version} ({verdict})",
        "",
        "| | |",
        "|---|---|",
        f"| Version | `{ctx.name}@{ctx.version}` |",
        f"| Commit | `{ctx.commit}` |",
        f"| Previous production version | {ctx.previous or 'none (first model)'} |",
    ]
    if ctx.run_url:
        lines.append(f"| Built by | {ctx.run_url} |")
    lines += ["", "## Decision", "", *[f"- {_cell(r)}" for r in ctx.decision_reasons], ""]
    lines += _data_section(ctx)
    lines += _params_section(ctx)
    lines += _metrics_section(ctx)
    lines += _comparison_section(ctx)
    lines += _use_section(ctx)
    return "\n".join(lines).rstrip() + "\n"
