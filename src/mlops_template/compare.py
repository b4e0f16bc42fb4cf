"""Base model vs PR model on the PR's test set, with paired-bootstrap uncertainty, and the
quality gate that judges the result.

Both models are scored through their own ONNX file and schema on the same rows (the PR's
test set), so the base's code is not needed: a feature the PR dropped is fed to the base
model as missing. Point metrics come from `evaluate.compute_metrics`, the one definition.
The bootstrap recomputes those same metrics for every resample at once, with resamples
expressed as row counts (a resample = a row-weight vector); `test_compare.py` checks the
vectorised form against `compute_metrics` on explicit resamples.

`decide_gate` is the pure decision (PR check and promotion): minimums per metric, and a
maximum regression judged on the confidence interval of the difference.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from mlops_template.config import CompareParams, GateParams, flatten
from mlops_template.evaluate import (
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    compute_metrics,
    compute_regression_metrics,
    confusion,
)
from mlops_template.features import categorical_features, feature_names, target_labels
from mlops_template.files import json_number

if TYPE_CHECKING:
    from mlops_template.worktree import BaseArtifacts

Verdict = Literal["better", "worse", "no significant change", "undetermined", "no base"]
ALL_METRICS = tuple(HIGHER_IS_BETTER)
# Cells per bootstrap chunk (resamples x rows): bounds memory for large test sets.
CHUNK_CELLS = 4_000_000
# Below this share of resamples with a defined metric (e.g. a class absent from many
# resamples of a tiny test set), no interval is reported and the gate refuses to judge.
MIN_VALID_RESAMPLE_FRACTION = 0.5
_MISSING = object()


# ---------------------------------------------------------------- inputs and results


@dataclass(frozen=True)
class ModelArtifacts:
    """One side of a comparison: the model and the files that describe how it was made."""

    onnx: bytes
    schema: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)  # params.yaml as written
    validation: dict[str, Any] | None = None
    metrics: dict[str, Any] | None = None  # the side's own evaluation (its own test set)
    baseline: dict[str, Any] | None = None  # eval/baseline.json: the gate's reference models


def workspace_side(root: Path = Path()) -> ModelArtifacts:
    """The model the working tree's pipeline built: the PR's side, or the new version."""
    import yaml

    from mlops_template import paths
    from mlops_template.files import read_json

    def optional(path: Path) -> dict[str, Any] | None:
        return read_json(path) if path.is_file() else None

    return ModelArtifacts(
        onnx=(root / paths.MODEL_ONNX).read_bytes(),
        schema=read_json(root / paths.SCHEMA),
        params=yaml.safe_load((root / paths.PARAMS).read_text()) or {},
        validation=optional(root / paths.VALIDATION_REPORT_JSON),
        metrics=optional(root / paths.METRICS),
        baseline=optional(root / paths.BASELINE),
    )


def base_side(base: BaseArtifacts) -> ModelArtifacts:
    """The rebuilt base (worktree.obtain_base) as one side of a comparison."""
    return ModelArtifacts(
        onnx=base.onnx or b"",
        schema=base.schema or {},
        params=base.params or {},
        validation=base.validation,
        metrics=base.metrics,
    )


@dataclass(frozen=True)
class MetricComparison:
    name: str
    pr: float
    base: float | None
    delta: float | None  # pr - base
    ci_low: float | None  # confidence interval of delta
    ci_high: float | None
    verdict: Verdict
    valid_resamples: int = 0

    @property
    def higher_is_better(self) -> bool:
        return HIGHER_IS_BETTER[self.name]


@dataclass(frozen=True)
class SchemaChange:
    column: str
    what: str  # "kind", "levels added", "range", ...
    base: str
    pr: str


@dataclass(frozen=True)
class DataDiff:
    base_hash: str | None
    pr_hash: str | None
    base_rows: int | None
    pr_rows: int | None
    base_test_rows: int | None
    pr_test_rows: int
    base_target: str | None
    pr_target: str
    base_features: int | None
    pr_features: int
    added_columns: list[str]
    removed_columns: list[str]
    schema_changes: list[SchemaChange]
    class_balance: list[tuple[str, int | None, int | None]]  # label, base count, PR count

    @property
    def changed(self) -> bool:
        return (
            self.base_hash != self.pr_hash
            or bool(self.added_columns or self.removed_columns or self.schema_changes)
            or self.base_target != self.pr_target
        )


@dataclass(frozen=True)
class ParamChange:
    key: str
    base: Any  # _MISSING when the key is new
    pr: Any  # _MISSING when the key was removed

    @property
    def added(self) -> bool:
        return self.base is _MISSING

    @property
    def removed(self) -> bool:
        return self.pr is _MISSING


@dataclass(frozen=True)
class ValidationSummary:
    passed: bool | None
    checks: int
    failures: list[str]


@dataclass(frozen=True)
class Comparison:
    classes: list[str]
    y_true: np.ndarray
    # What each model output on the test rows: class probabilities (rows x classes, in
    # `classes` order) for a classifier, predicted values (one per row) for regression.
    outputs_pr: np.ndarray
    outputs_base: np.ndarray | None
    metrics: list[MetricComparison]
    base_available: bool
    base_note: str  # why there is no base, or what was special about scoring it
    fed_missing: list[str]  # base features absent from the PR's data, fed as missing
    data: DataDiff
    params: list[ParamChange]
    validation_pr: ValidationSummary
    validation_base: ValidationSummary | None
    confusion_pr: list[list[int]]
    confusion_base: list[list[int]] | None
    resamples: int
    confidence: float
    seed: int
    bootstrap_seconds: float
    # The baselines' metrics on these same test rows ({"majority": {"roc_auc": ...}}), or
    # None with the reason in baseline_note (not computed, or on other rows).
    baselines: dict[str, dict[str, float | None]] | None = None
    baseline_note: str = ""
    # "regression": classes and confusion matrices are empty
    task: str = "classification"

    def metric(self, name: str) -> MetricComparison | None:
        return next((m for m in self.metrics if m.name == name), None)


# ---------------------------------------------------------------- scoring


class IncomparableError(ValueError):
    """The base model cannot be scored on the PR's test set (other classes, bad inputs)."""


def base_input_frame(test: pd.DataFrame, schema: dict[str, Any]) -> tuple[pd.DataFrame, list[str]]:
    """The test rows with every column the model's schema expects; absent ones as missing."""
    absent = [name for name in feature_names(schema) if name not in test.columns]
    if not absent:
        return test, []
    categorical = set(categorical_features(schema))
    filled = test.copy()
    for name in absent:
        filled[name] = pd.Series(
            None if name in categorical else np.nan,
            index=test.index,
            dtype=object if name in categorical else "float64",
        )
    return filled, absent


def score_model(
    onnx_model: bytes, schema: dict[str, Any], test: pd.DataFrame, classes: list[str]
) -> tuple[np.ndarray, list[str]]:
    """Class probabilities of an ONNX model on TEST, columns in CLASSES order.

    Returns (proba, features fed as missing). Raises IncomparableError when the model's
    classes differ from CLASSES.
    """
    from mlops_template.features import feature_frame
    from mlops_template.train import onnx_predict, onnx_session

    if schema.get("task") == "regression":
        raise IncomparableError(
            "the base model is a regression model, the PR's a classifier: no like-for-like "
            "comparison"
        )
    model_classes = [str(c) for c in schema["classes"]]
    if sorted(model_classes) != sorted(classes):
        raise IncomparableError(
            f"the base model predicts classes {model_classes[:10]}, the PR's data has "
            f"{classes[:10]}: no like-for-like comparison"
        )
    frame, absent = base_input_frame(test, schema)
    _, proba = onnx_predict(onnx_session(onnx_model), feature_frame(frame, schema), schema)
    if proba.shape != (len(test), len(model_classes)):
        raise IncomparableError(
            f"the model returned probabilities of shape {proba.shape}, expected "
            f"{(len(test), len(model_classes))}"
        )
    order = [model_classes.index(c) for c in classes]
    return proba[:, order], absent


def score_regressor(
    onnx_model: bytes, schema: dict[str, Any], test: pd.DataFrame
) -> tuple[np.ndarray, list[str]]:
    """Predicted values of a regression ONNX model on TEST, and the features fed as
    missing. Raises IncomparableError when the model is a classifier."""
    from mlops_template.features import feature_frame
    from mlops_template.train import onnx_predict_values, onnx_session

    if schema.get("task") != "regression":
        raise IncomparableError(
            f"the base model is a classifier (task {schema.get('task')!r}), the PR's a "
            "regression model: no like-for-like comparison"
        )
    frame, absent = base_input_frame(test, schema)
    values = onnx_predict_values(onnx_session(onnx_model), feature_frame(frame, schema), schema)
    if values.shape != (len(test),):
        raise IncomparableError(f"the model returned {values.shape} values for {len(test)} rows")
    return values, absent


# ---------------------------------------------------------------- fast bootstrap


@dataclass(frozen=True)
class _Rows:
    """Per-row quantities of one model's predictions, from which every metric of a
    weighted resample is a matrix product."""

    truth: np.ndarray  # (n, K) one-hot of the true class
    pred: np.ndarray  # (n, K) one-hot of the predicted class
    hit: np.ndarray  # (n, K) truth * pred
    correct: np.ndarray  # (n,)
    nll: np.ndarray  # (n,) per-row log loss, as sklearn's log_loss computes it
    auc: list[
        tuple[np.ndarray, np.ndarray, np.ndarray]
    ]  # per curve class: order, group starts, positive


def _rows(y_index: np.ndarray, proba: np.ndarray, n_classes: int) -> _Rows:
    n = len(y_index)
    eye = np.eye(n_classes)
    truth, pred = eye[y_index], eye[np.argmax(proba, axis=1)]
    p_true = proba[np.arange(n), y_index]
    eps = np.finfo(np.float64).eps  # compute_metrics clips p(true class) to [eps, 1 - eps]
    nll = -np.log(np.clip(p_true, eps, 1 - eps))
    curve_classes = [1] if n_classes == 2 else list(range(n_classes))
    auc = []
    for k in curve_classes:
        order = np.argsort(proba[:, k], kind="mergesort")
        scores = proba[order, k]
        starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])
        auc.append((order, starts, (y_index[order] == k).astype(np.float64)))
    return _Rows(truth, pred, truth * pred, (truth * pred).sum(axis=1), nll, auc)


def _weighted_auc(
    weights: np.ndarray, order: np.ndarray, starts: np.ndarray, positive: np.ndarray
) -> np.ndarray:
    """ROC AUC per weight row: P(score_pos > score_neg) + 0.5 P(tie), ties grouped."""
    sorted_w = weights[:, order]
    w_pos = np.add.reduceat(sorted_w * positive, starts, axis=1)
    w_neg = np.add.reduceat(sorted_w * (1.0 - positive), starts, axis=1)
    below = np.cumsum(w_neg, axis=1) - w_neg
    numerator = (w_pos * (below + 0.5 * w_neg)).sum(axis=1)
    total_pos, total_neg = w_pos.sum(axis=1), w_neg.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(
            (total_pos > 0) & (total_neg > 0), numerator / (total_pos * total_neg), np.nan
        )


def _weighted_metrics(
    weights: np.ndarray, rows: _Rows, metrics: Sequence[str]
) -> dict[str, np.ndarray]:
    """Every requested metric for each row of WEIGHTS (resample counts), vectorised."""
    total = weights.sum(axis=1)
    out: dict[str, np.ndarray] = {}
    need_counts = {"balanced_accuracy", "f1_macro"} & set(metrics)
    if need_counts:
        true_k, pred_k, hit_k = weights @ rows.truth, weights @ rows.pred, weights @ rows.hit
        with np.errstate(invalid="ignore", divide="ignore"):
            if "balanced_accuracy" in metrics:
                recall = np.where(true_k > 0, hit_k / true_k, np.nan)
                out["balanced_accuracy"] = np.nanmean(recall, axis=1)
            if "f1_macro" in metrics:
                denominator = true_k + pred_k
                f1 = np.where(denominator > 0, 2 * hit_k / denominator, 0.0)
                out["f1_macro"] = f1.mean(axis=1)
    if "accuracy" in metrics:
        out["accuracy"] = (weights @ rows.correct) / total
    if "log_loss" in metrics:
        out["log_loss"] = (weights @ rows.nll) / total
    if "roc_auc" in metrics:
        per_class = np.stack([_weighted_auc(weights, *curve) for curve in rows.auc], axis=1)
        if per_class.shape[1] == 1:
            out["roc_auc"] = per_class[:, 0]  # binary: NaN when a class is absent
        else:  # mean over the classes present (defined AUC); NaN with fewer than two
            defined = np.isfinite(per_class)
            total_auc = np.where(defined, per_class, 0.0).sum(axis=1)
            n_defined = defined.sum(axis=1)
            out["roc_auc"] = np.where(n_defined >= 2, total_auc / np.maximum(n_defined, 1), np.nan)
    return out


def resample_counts(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of n rows as count matrices (resamples x n), in chunks."""
    rng = np.random.default_rng(seed)
    chunk = max(1, CHUNK_CELLS // max(n, 1))
    done = 0
    while done < resamples:
        size = min(chunk, resamples - done)
        draws = rng.integers(0, n, size=(size, n))
        offsets = (np.arange(size) * n)[:, None]
        yield (
            np.bincount((draws + offsets).ravel(), minlength=size * n)
            .reshape(size, n)
            .astype(np.float64)
        )
        done += size


def bootstrap_metrics(
    y_true: np.ndarray,
    classes: list[str],
    probas: Sequence[np.ndarray],
    metrics: Sequence[str],
    resamples: int,
    seed: int,
) -> list[dict[str, np.ndarray]]:
    """Each metric of each model on the same (paired) resamples: one array per metric."""
    index = {c: i for i, c in enumerate(classes)}
    y_index = np.array([index[str(y)] for y in y_true], dtype=np.int64)
    models = [_rows(y_index, proba, len(classes)) for proba in probas]
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in models]
    with np.errstate(invalid="ignore"):
        for counts in resample_counts(len(y_index), resamples, seed):
            for model, part in zip(models, parts, strict=True):
                part.append(_weighted_metrics(counts, model, metrics))
    return [{m: np.concatenate([p[m] for p in part]) for m in metrics} for part in parts]


def bootstrap_regression_metrics(
    y_true: np.ndarray,
    predictions: Sequence[np.ndarray],
    metrics: Sequence[str],
    resamples: int,
    seed: int,
) -> list[dict[str, np.ndarray]]:
    """`bootstrap_metrics` for predicted values: every model on the same resamples, each
    metric a weighted form of compute_regression_metrics (mape NaN when a true value is
    0, r2 NaN when a resample's target is constant)."""
    y = np.asarray(y_true, dtype=np.float64)
    centre = float(y.mean()) if len(y) else 0.0
    centred = y - centre
    has_zero = bool((y == 0).any())
    errors = [np.asarray(p, dtype=np.float64) - y for p in predictions]
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in errors]
    with np.errstate(invalid="ignore", divide="ignore"):
        for counts in resample_counts(len(y), resamples, seed):
            total = counts.sum(axis=1)
            # sum of squares about each resample's own mean, shifted for stability
            shift = (counts @ centred) / total
            sst = counts @ centred**2 - total * shift**2
            for error, part in zip(errors, parts, strict=True):
                sse = counts @ error**2
                out: dict[str, np.ndarray] = {}
                if "rmse" in metrics:
                    out["rmse"] = np.sqrt(sse / total)
                if "mae" in metrics:
                    out["mae"] = (counts @ np.abs(error)) / total
                if "r2" in metrics:
                    defined = sst > 1e-12 * max(1.0, float(np.max(np.abs(sst))))
                    out["r2"] = np.where(defined, 1.0 - sse / np.where(defined, sst, 1.0), np.nan)
                if "mape" in metrics:
                    if has_zero:
                        out["mape"] = np.full(len(total), np.nan)
                    else:
                        out["mape"] = (counts @ (np.abs(error) / np.abs(y))) / total
                part.append(out)
    return [{m: np.concatenate([p[m] for p in part]) for m in metrics} for part in parts]


def compare_regression_metrics(
    y_true: np.ndarray,
    pred_pr: np.ndarray,
    pred_base: np.ndarray | None,
    metrics: Sequence[str],
    resamples: int,
    confidence: float,
    seed: int,
) -> list[MetricComparison]:
    """`compare_metrics` for regression models: point values from
    compute_regression_metrics (mape: NaN when a true value is 0) and the paired
    bootstrap interval of PR - base on the same test rows."""
    pr_point = compute_regression_metrics(y_true, pred_pr)
    if pred_base is None:
        return [
            MetricComparison(m, pr_point.get(m, math.nan), None, None, None, None, "no base")
            for m in metrics
        ]
    base_point = compute_regression_metrics(y_true, pred_base)
    pr_boot, base_boot = bootstrap_regression_metrics(
        y_true, [pred_pr, pred_base], metrics, resamples, seed
    )
    return _with_intervals(
        metrics,
        {m: pr_point.get(m, math.nan) for m in metrics},
        {m: base_point.get(m, math.nan) for m in metrics},
        pr_boot,
        base_boot,
        resamples,
        confidence,
    )


def _with_intervals(
    metrics: Sequence[str],
    pr_point: dict[str, float],
    base_point: dict[str, float],
    pr_boot: dict[str, np.ndarray],
    base_boot: dict[str, np.ndarray],
    resamples: int,
    confidence: float,
) -> list[MetricComparison]:
    alpha = 1.0 - confidence
    out = []
    for m in metrics:
        deltas = pr_boot[m] - base_boot[m]
        valid = deltas[np.isfinite(deltas)]
        low = high = None
        if len(valid) >= MIN_VALID_RESAMPLE_FRACTION * resamples:
            low, high = (float(v) for v in np.quantile(valid, [alpha / 2, 1 - alpha / 2]))
        delta = pr_point[m] - base_point[m]
        if not math.isfinite(delta):
            low = high = None
        out.append(
            MetricComparison(
                m,
                pr_point[m],
                base_point[m],
                delta,
                low,
                high,
                _verdict(m, low, high),
                len(valid),
            )
        )
    return out


def _verdict(name: str, low: float | None, high: float | None) -> Verdict:
    if low is None or high is None:
        return "undetermined"
    sign = 1.0 if HIGHER_IS_BETTER[name] else -1.0
    low, high = sorted((sign * low, sign * high))
    if low > 0:
        return "better"
    if high < 0:
        return "worse"
    return "no significant change"


def compare_metrics(
    y_true: np.ndarray,
    classes: list[str],
    proba_pr: np.ndarray,
    proba_base: np.ndarray | None,
    metrics: Sequence[str],
    resamples: int,
    confidence: float,
    seed: int,
) -> list[MetricComparison]:
    """Point values (compute_metrics) and the paired-bootstrap interval of PR - base."""
    pr_point = compute_metrics(y_true, proba_pr, classes)
    if proba_base is None:
        return [
            MetricComparison(m, pr_point[m], None, None, None, None, "no base") for m in metrics
        ]
    base_point = compute_metrics(y_true, proba_base, classes)
    pr_boot, base_boot = bootstrap_metrics(
        y_true, classes, [proba_pr, proba_base], metrics, resamples, seed
    )
    return _with_intervals(metrics, pr_point, base_point, pr_boot, base_boot, resamples, confidence)


# ---------------------------------------------------------------- data, params, validation


def _describe_range(feature: dict[str, Any]) -> str:
    return f"[{feature.get('min')}, {feature.get('max')}]"


def schema_changes(base: dict[str, Any], pr: dict[str, Any]) -> list[SchemaChange]:
    base_features = {f["name"]: f for f in base.get("features", [])}
    changes = []
    for feature in pr.get("features", []):
        name = feature["name"]
        old = base_features.get(name)
        if old is None:
            continue
        if old.get("kind") != feature.get("kind"):
            changes.append(
                SchemaChange(name, "kind", str(old.get("kind")), str(feature.get("kind")))
            )
            continue
        if old.get("dtype") != feature.get("dtype"):
            changes.append(
                SchemaChange(name, "dtype", str(old.get("dtype")), str(feature.get("dtype")))
            )
        if feature.get("kind") == "categorical":
            old_levels, new_levels = set(old.get("levels", [])), set(feature.get("levels", []))
            if new_levels - old_levels:
                changes.append(
                    SchemaChange(
                        name, "levels added", "", ", ".join(sorted(new_levels - old_levels))
                    )
                )
            if old_levels - new_levels:
                changes.append(
                    SchemaChange(
                        name, "levels removed", ", ".join(sorted(old_levels - new_levels)), ""
                    )
                )
        elif (old.get("min"), old.get("max")) != (feature.get("min"), feature.get("max")):
            changes.append(
                SchemaChange(name, "range", _describe_range(old), _describe_range(feature))
            )
        old_missing, new_missing = (
            old.get("missing_fraction", 0.0),
            feature.get("missing_fraction", 0.0),
        )
        if old_missing != new_missing:
            changes.append(
                SchemaChange(name, "missing fraction", f"{old_missing:.2%}", f"{new_missing:.2%}")
            )
    return changes


def data_diff(
    base: dict[str, Any] | None,
    pr: dict[str, Any],
    pr_test_rows: int,
    base_test_rows: int | None,
) -> DataDiff:
    pr_names = feature_names(pr)
    base_names = feature_names(base) if base else []
    pr_counts = pr.get("class_counts", {})
    base_counts = base.get("class_counts", {}) if base else {}
    labels = sorted(set(pr_counts) | set(base_counts))
    return DataDiff(
        base_hash=base.get("dataset_hash") if base else None,
        pr_hash=pr.get("dataset_hash"),
        base_rows=base.get("rows") if base else None,
        pr_rows=pr.get("rows"),
        base_test_rows=base_test_rows,
        pr_test_rows=pr_test_rows,
        base_target=base.get("target") if base else None,
        pr_target=pr["target"],
        base_features=len(base_names) if base else None,
        pr_features=len(pr_names),
        added_columns=[n for n in pr_names if base and n not in base_names],
        removed_columns=[n for n in base_names if n not in pr_names],
        schema_changes=schema_changes(base, pr) if base else [],
        class_balance=[(label, base_counts.get(label), pr_counts.get(label)) for label in labels],
    )


def params_diff(base: dict[str, Any], pr: dict[str, Any]) -> list[ParamChange]:
    """Flattened dotted keys whose value differs (added and removed keys included)."""
    old, new = flatten(base or {}), flatten(pr or {})
    changes = []
    for key in sorted(set(old) | set(new)):
        before, after = old.get(key, _MISSING), new.get(key, _MISSING)
        if (
            before is _MISSING
            or after is _MISSING
            or before != after
            or type(before) is not type(after)
        ):
            changes.append(ParamChange(key, before, after))
    return changes


def validation_summary(report: dict[str, Any] | None) -> ValidationSummary:
    if not report:
        return ValidationSummary(None, 0, [])
    failures = [
        f"{f.get('rule')} ({f.get('column') or 'dataset'}): {f.get('detail')}"
        for f in report.get("failures", [])
    ]
    return ValidationSummary(bool(report.get("passed")), len(report.get("checks", [])), failures)


# ---------------------------------------------------------------- the comparison


def metric_task(metric: str) -> str:
    """The task a metric belongs to: "regression" (rmse, mae, r2, mape) or "classification"."""
    return "regression" if metric in REGRESSION_METRICS else "classification"


def metrics_to_compare(
    settings: CompareParams, gate: GateParams | None = None, task: str = "classification"
) -> list[str]:
    """compare.metrics, then any metric the gate judges that is not already listed; only
    the metrics of TASK ("regression": all four when compare.metrics lists none)."""
    names = list(settings.metrics)
    if gate is not None:
        judged = [m for margins in gate.baseline.values() for m in margins]
        names += [m for m in (*gate.min, *judged, *gate.max_regression) if m not in names]
    if task == "regression":
        listed = [m for m in names if metric_task(m) == "regression"]
        if not any(metric_task(m) == "regression" for m in settings.metrics):
            listed = [*REGRESSION_METRICS, *listed]
        return list(dict.fromkeys(listed))
    return list(dict.fromkeys(m for m in names if metric_task(m) == "classification"))


def baselines_on(
    baseline: dict[str, Any] | None, test: pd.DataFrame
) -> tuple[dict[str, dict[str, float | None]] | None, str]:
    """The baseline metrics if they were scored on exactly TEST's rows, else (None, why)."""
    from mlops_template.data import frame_hash

    if not baseline:
        return None, "no baseline was computed (eval/baseline.json is missing: run dvc repro)"
    if baseline.get("test_rows") != len(test) or baseline.get("test_hash") != frame_hash(test):
        return None, (
            f"eval/baseline.json was scored on other test rows ({baseline.get('test_rows')} "
            f"rows) than this comparison's ({len(test)} rows): run dvc repro"
        )
    return dict(baseline.get("models") or {}), ""


def compare(
    candidate: ModelArtifacts,
    base: ModelArtifacts | None,
    test: pd.DataFrame,
    settings: CompareParams,
    gate: GateParams | None = None,
    base_missing_reason: str = "",
) -> Comparison:
    """Score both models on TEST (the candidate's test set) and describe every difference.

    The candidate's schema decides the task: class probabilities and a confusion matrix
    for a classifier, predicted values for a regression model (whose base must be one)."""
    task = "regression" if candidate.schema.get("task") == "regression" else "classification"
    y_true = target_labels(test, candidate.schema)
    classes = [] if task == "regression" else [str(c) for c in candidate.schema["classes"]]

    def score(side: ModelArtifacts) -> tuple[np.ndarray, list[str]]:
        if task == "regression":
            return score_regressor(side.onnx, side.schema, test)
        return score_model(side.onnx, side.schema, test, classes)

    outputs_pr, _ = score(candidate)
    outputs_base, fed_missing, note = None, [], base_missing_reason
    if base is not None:
        try:
            outputs_base, fed_missing = score(base)
        except (IncomparableError, KeyError) as exc:  # KeyError: a schema of another task
            note = str(exc)
    wanted = metrics_to_compare(settings, gate, task)
    bootstrap = (settings.bootstrap_resamples, settings.confidence, settings.seed)
    started = time.perf_counter()
    if task == "regression":
        metrics = compare_regression_metrics(y_true, outputs_pr, outputs_base, wanted, *bootstrap)
        confusion_pr, confusion_base = [], None
    else:
        metrics = compare_metrics(y_true, classes, outputs_pr, outputs_base, wanted, *bootstrap)
        confusion_pr = confusion(y_true, outputs_pr, classes)
        confusion_base = (
            confusion(y_true, outputs_base, classes) if outputs_base is not None else None
        )
    seconds = time.perf_counter() - started
    base_test_rows = (base.metrics or {}).get("test_rows") if base is not None else None
    baselines, baseline_note = baselines_on(candidate.baseline, test)
    return Comparison(
        classes=classes,
        y_true=y_true,
        outputs_pr=outputs_pr,
        outputs_base=outputs_base,
        metrics=metrics,
        base_available=outputs_base is not None,
        base_note=note,
        fed_missing=fed_missing,
        data=data_diff(
            base.schema if base is not None else None, candidate.schema, len(test), base_test_rows
        ),
        params=params_diff(base.params if base is not None else {}, candidate.params),
        validation_pr=validation_summary(candidate.validation),
        validation_base=validation_summary(base.validation) if base is not None else None,
        confusion_pr=confusion_pr,
        confusion_base=confusion_base,
        resamples=settings.bootstrap_resamples,
        confidence=settings.confidence,
        seed=settings.seed,
        bootstrap_seconds=seconds,
        baselines=baselines,
        baseline_note=baseline_note,
        task=task,
    )


# ---------------------------------------------------------------- the gate


@dataclass(frozen=True)
class RuleResult:
    rule: str  # dotted params key, e.g. "gate.min.roc_auc"
    passed: bool
    detail: str


@dataclass(frozen=True)
class GateDecision:
    passed: bool
    mode: Literal["enforce", "warn"]
    reasons: list[str]  # one per failed rule, naming it
    rules: list[RuleResult]
    notes: list[str]  # e.g. "no base model: regression rules skipped"
    # rules on the other task's metrics (params.yaml can hold both, so a fork switches
    # task by params only): not judged, and shown apart from the notes
    other_task_rules: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        """True when the check must fail: an enforced gate that did not pass."""
        return not self.passed and self.mode == "enforce"

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "mode": self.mode, "reasons": list(self.reasons)}


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _min_rule(metric: str, bound: float, found: MetricComparison | None) -> RuleResult:
    rule = f"gate.min.{metric}"
    higher = HIGHER_IS_BETTER[metric]
    if found is None:
        return RuleResult(rule, False, f"{rule}: {metric} was not computed; refused")
    value = found.pr
    if value is None or not math.isfinite(value):
        return RuleResult(
            rule, False, f"{rule}: PR {metric} is {value} (undefined on this test set); refused"
        )
    if higher and value < bound:
        return RuleResult(
            rule, False, f"{rule}: PR {metric} {value:.4f} is below the minimum {bound}"
        )
    if not higher and value > bound:
        return RuleResult(
            rule, False, f"{rule}: PR {metric} {value:.4f} is above the maximum {bound}"
        )
    sign = "≥" if higher else "≤"
    return RuleResult(rule, True, f"{rule}: PR {metric} {value:.4f} {sign} {bound}")


BASELINE_NAMES = {
    "majority": "the majority-class baseline",
    "mean": "the mean-value baseline",
    "linear": "the logistic-regression baseline",
}
REGRESSION_BASELINE_NAMES = BASELINE_NAMES | {"linear": "the ridge-regression baseline"}


def _baseline_rule(
    baseline: str,
    metric: str,
    margin: float,
    found: MetricComparison | None,
    baselines: dict[str, dict[str, float | None]] | None,
    note: str,
) -> RuleResult:
    """The candidate beats BASELINE on METRIC by at least MARGIN (same test rows)."""
    rule = f"gate.baseline.{baseline}.{metric}"
    names = REGRESSION_BASELINE_NAMES if metric_task(metric) == "regression" else BASELINE_NAMES
    what = names.get(baseline, baseline)
    if found is None:
        return RuleResult(rule, False, f"{rule}: {metric} was not computed; refused")
    if baselines is None:
        return RuleResult(rule, False, f"{rule}: {note or 'no baseline'}; refused")
    reference = (baselines.get(baseline) or {}).get(metric)
    value = found.pr
    if value is None or not math.isfinite(value):
        return RuleResult(
            rule, False, f"{rule}: PR {metric} is {value} (undefined on this test set); refused"
        )
    if reference is None or not math.isfinite(reference):
        return RuleResult(
            rule, False, f"{rule}: {what}'s {metric} is undefined on this test set; refused"
        )
    # improvement over the baseline, in the metric's good direction
    gain = value - reference if HIGHER_IS_BETTER[metric] else reference - value
    shown = f"PR {metric} {value:.4f} vs {what} {reference:.4f} ({gain:+.4f} better)"
    if margin >= 0:
        required = f"must beat it by at least {margin}"
    else:
        required = f"may trail it by at most {-margin}"
    # a tolerance for float noise: "equal to the margin" passes
    if gain < margin - 1e-12:
        return RuleResult(rule, False, f"{rule}: {shown}; {required}")
    return RuleResult(rule, True, f"{rule}: {shown}; {required}")


def _regression_rule(
    metric: str, allowed: float, found: MetricComparison | None, confidence: float
) -> RuleResult:
    rule = f"gate.max_regression.{metric}"
    if found is None:
        return RuleResult(rule, False, f"{rule}: {metric} was not computed; refused")
    values = (found.pr, found.base, found.delta)
    if any(v is None or not math.isfinite(v) for v in values):
        return RuleResult(
            rule,
            False,
            f"{rule}: {metric} is undefined (PR {found.pr}, base {found.base}); cannot judge a "
            "regression, refused",
        )
    if found.ci_low is None or found.ci_high is None:
        return RuleResult(
            rule,
            False,
            f"{rule}: the confidence interval of the {metric} difference is undefined "
            f"({found.valid_resamples} valid resamples); cannot judge a regression, refused",
        )
    level = f"{confidence:.0%} CI"
    interval = f"Δ {found.delta:+.4f}, {level} [{found.ci_low:+.4f}, {found.ci_high:+.4f}]"
    if HIGHER_IS_BETTER[metric]:
        failed = found.ci_high < -allowed
        what = "dropped" if found.delta < 0 else "changed"
    else:
        failed = found.ci_low > allowed
        what = "rose" if found.delta > 0 else "changed"
    if failed:
        return RuleResult(
            rule,
            False,
            f"{rule}: {metric} {what} from {found.base:.4f} to {found.pr:.4f} ({interval}); the "
            f"whole interval is beyond the allowed regression of {allowed}",
        )
    return RuleResult(rule, True, f"{rule}: {interval} within the allowed regression of {allowed}")


def decide_gate(comparison: Comparison, gate: GateParams) -> GateDecision:
    """The quality gate: pure, so it is tested on every case (better, equal, worse, NaN,
    first model) and reused by promotion.

    - `gate.baseline.<baseline>.<metric>`: the PR's value must beat the baseline model's
      on the same test rows by the margin (negative: trail it by at most that). A NaN
      value, or a baseline missing or scored on other rows, is refused.
    - `gate.min.<metric>`: the PR's value must reach the floor (log_loss: stay under the
      ceiling). A NaN value is refused.
    - `gate.max_regression.<metric>`: fails only when the whole confidence interval of
      PR - base lies beyond the allowed drop (a real and too-large regression).
      Without a base model (first model, or not comparable) only the baseline and
      minimum rules apply.
    """
    task = comparison.task

    def applies(metric: str) -> bool:
        return metric_task(metric) == task

    rules = [
        _baseline_rule(
            name, m, margin, comparison.metric(m), comparison.baselines, comparison.baseline_note
        )
        for name, margins in gate.baseline.items()
        for m, margin in margins.items()
        if applies(m)
    ]
    rules += [
        _min_rule(m, bound, comparison.metric(m)) for m, bound in gate.min.items() if applies(m)
    ]
    notes = []
    # rules on the other task's metrics (params.yaml can hold both): listed, not judged
    other = [f"gate.baseline.{n}.{m}" for n, ms in gate.baseline.items() for m in ms]
    other += [f"gate.min.{m}" for m in gate.min] + [
        f"gate.max_regression.{m}" for m in gate.max_regression
    ]
    other = [key for key in other if not applies(key.rsplit(".", 1)[1])]
    if not rules and other:
        rules.append(
            RuleResult(
                "gate",
                False,
                f"gate: no rule judges a {task} model's metrics (gate.baseline, gate.min); "
                "refused: add rules for them",
            )
        )
    max_regression = {m: v for m, v in gate.max_regression.items() if applies(m)}
    if comparison.base_available:
        rules += [
            _regression_rule(m, allowed, comparison.metric(m), comparison.confidence)
            for m, allowed in max_regression.items()
        ]
    elif max_regression:
        why = comparison.base_note or "no base model"
        notes.append(
            f"{why}; regression rules skipped, only the minimums apply (gate.baseline, gate.min)"
        )
    reasons = [r.detail for r in rules if not r.passed]
    return GateDecision(not reasons, gate.mode, reasons, rules, notes, other)


def comparison_summary(comparison: Comparison, decision: GateDecision) -> dict[str, Any]:
    """Machine-readable summary (reports/pr/comparison.json) for later tooling."""

    return {
        "base_available": comparison.base_available,
        "base_note": comparison.base_note,
        "classes": comparison.classes,
        "test_rows": len(comparison.y_true),
        "bootstrap": {
            "resamples": comparison.resamples,
            "confidence": comparison.confidence,
            "seed": comparison.seed,
        },
        "metrics": {
            m.name: {
                "pr": json_number(m.pr),
                "base": json_number(m.base),
                "delta": json_number(m.delta),
                "ci": [json_number(m.ci_low), json_number(m.ci_high)],
                "verdict": m.verdict,
            }
            for m in comparison.metrics
        },
        "baselines": comparison.baselines,
        "fed_missing": comparison.fed_missing,
        "params_changed": [c.key for c in comparison.params],
        "data_changed": comparison.data.changed,
        "gate": decision.to_json() | {"rules": [r.__dict__ for r in decision.rules]},
    }
