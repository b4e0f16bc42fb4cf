"""Metrics, curves and feature importance of a fitted model on the test set.

The metrics themselves are defined once, in metrics.py. Everything here is
numpy: the evaluate stage (and anything else that scores predictions) starts without
importing scikit-learn or scipy, which alone costs about a second per process. The
unit tests check each definition against scikit-learn's.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

# The metric definitions live in metrics.py; they are re-exported here for the modules
# that score and plot together.
from mlops_template.metrics import (  # noqa: F401
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
    average_ranks,
    binary_roc_auc,
    compute_metrics,
    compute_regression_metrics,
    confusion_matrix,
    mape_note,
    positive_class,
    predicted_labels,
)

CURVE_POINTS = 101  # curves are resampled to a fixed grid: small, diffable plot files


def per_class_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support of each class (0 where undefined)."""
    counts = confusion_matrix(
        np.asarray(y_true).astype(str), predicted_labels(proba, classes), classes
    )
    tp = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {
        c: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, c in enumerate(classes)
    }


def confusion(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> list[list[int]]:
    matrix = confusion_matrix(
        np.asarray(y_true).astype(str), predicted_labels(proba, classes), classes
    )
    return matrix.tolist()


def curve_classes(classes: list[str]) -> list[str]:
    """Binary: one curve for the positive class; multiclass: one-vs-rest per class."""
    return [positive_class(classes)] if len(classes) == 2 else list(classes)


def _cumulative_counts(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when predicting positive at each distinct score, high
    to low (the thresholds of a ROC or precision-recall curve)."""
    order = np.argsort(-score, kind="mergesort")
    score, truth = score[order], truth[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    tps = np.cumsum(truth)[last_of_tie].astype(np.float64)
    fps = (last_of_tie + 1) - tps
    return tps, fps


def roc_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) from (0, 0) to (1, 1)."""
    tps, fps = _cumulative_counts(np.asarray(truth, dtype=bool), np.asarray(score, dtype=float))
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return fps / fps[-1], tps / tps[-1]


def precision_recall_curve(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision, recall) at each threshold, plus the (1, 0) end point."""
    tps, fps = _cumulative_counts(np.asarray(truth, dtype=bool), np.asarray(score, dtype=float))
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return np.r_[precision, 1.0], np.r_[recall, 0.0]


def roc_points(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    grid = np.linspace(0, 1, CURVE_POINTS)
    rows = []
    for c in curve_classes(classes):
        truth = np.asarray(y_true).astype(str) == c
        if truth.all() or not truth.any():
            continue
        fpr, tpr = roc_curve(truth, proba[:, classes.index(c)])
        tpr_grid = np.interp(grid, fpr, tpr)
        tpr_grid[0] = 0.0
        rows += [
            {"class": c, "fpr": round(float(x), 4), "tpr": round(float(y), 6)}
            for x, y in zip(grid, tpr_grid, strict=True)
        ]
    return rows


def precision_recall_points(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str]
) -> list[dict[str, Any]]:
    grid = np.linspace(0, 1, CURVE_POINTS)
    rows = []
    for c in curve_classes(classes):
        truth = np.asarray(y_true).astype(str) == c
        if not truth.any():
            continue
        precision, recall = precision_recall_curve(truth, proba[:, classes.index(c)])
        # recall decreases along the arrays; interpolate on increasing recall
        order = np.argsort(recall, kind="stable")
        p_grid = np.interp(grid, recall[order], precision[order])
        rows += [
            {"class": c, "recall": round(float(x), 4), "precision": round(float(y), 6)}
            for x, y in zip(grid, p_grid, strict=True)
        ]
    return rows


def confusion_points(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str]
) -> list[dict[str, str]]:
    y_pred = predicted_labels(proba, classes)
    return [
        {"actual": str(a), "predicted": str(p)}
        for a, p in zip(np.asarray(y_true).astype(str), y_pred, strict=True)
    ]


def permutation_importance(
    predict_proba: Callable[[pd.DataFrame], np.ndarray],
    features: pd.DataFrame,
    y_true: np.ndarray,
    classes: list[str],
    repeats: int,
    seed: int,
) -> list[dict[str, float | str]]:
    """Drop in ROC AUC (log loss if AUC is undefined) when one input column is shuffled.

    Model-agnostic and on the original columns (not one-hot pieces), so the three model
    families are comparable. One predict_proba per column and repeat.
    """
    baseline = compute_metrics(y_true, predict_proba(features), classes)
    metric = "roc_auc" if not math.isnan(baseline["roc_auc"]) else "log_loss"
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0

    def drop(shuffled: pd.DataFrame) -> float:
        return sign * (
            baseline[metric] - compute_metrics(y_true, predict_proba(shuffled), classes)[metric]
        )

    return shuffled_column_importance(features, drop, repeats, seed)


def shuffled_column_importance(
    features: pd.DataFrame,
    loss: Callable[[pd.DataFrame], float],
    repeats: int,
    seed: int,
) -> list[dict[str, float | str]]:
    """Mean and spread of `loss(features with one column shuffled)` per column, `repeats`
    shuffles each (seeded), most important first."""
    rng = np.random.default_rng(seed)
    rows = []
    for column in features.columns:
        losses = []
        original = features[column]
        shuffled = features.copy()
        for _ in range(repeats):
            shuffled[column] = rng.permutation(original.to_numpy())
            losses.append(loss(shuffled))
        rows.append(
            {
                "feature": column,
                "importance": round(float(np.mean(losses)), 6),
                "std": round(float(np.std(losses)), 6),
            }
        )
    rows.sort(key=lambda r: (-float(r["importance"]), str(r["feature"])))
    return rows


def importance_rows(n_rows: int, max_rows: int, seed: int) -> np.ndarray:
    """Row positions the permutation importance uses: all, or a seeded sample."""
    if n_rows <= max_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, max_rows, replace=False))


def evaluate_model(
    pipeline: Any | None,
    onnx_model: bytes,
    test: pd.DataFrame,
    schema: dict[str, Any],
    importance_repeats: int,
    seed: int,
    importance_max_rows: int | None = None,
) -> dict[str, Any]:
    """Everything the evaluate stage writes, computed from the model and the test set.

    The probabilities come from the ONNX model: the artifact that is served, and which
    the train stage proved equal to its sklearn twin (labels identical, probabilities
    within `train.onnx_probability_tolerance`). `pipeline` is optional: when given, its
    class order is checked against the schema's.
    """
    from mlops_template.features import feature_frame, target_labels
    from mlops_template.train import onnx_classes, onnx_predict, onnx_session

    session = onnx_session(onnx_model)
    classes = list(schema["classes"])
    for source, found in (
        ("ONNX model", onnx_classes(session)),
        ("sklearn model", None if pipeline is None else [str(c) for c in pipeline.classes_]),
    ):
        if found is not None and found != classes:
            raise ValueError(f"{source} classes {found} differ from schema classes {classes}")
    features = feature_frame(test, schema)
    y_true = target_labels(test, schema)
    proba = onnx_predict(session, features, schema)[1]
    rows = importance_rows(len(features), importance_max_rows or len(features), seed)
    return {
        "metrics": compute_metrics(y_true, proba, classes),
        "per_class": per_class_metrics(y_true, proba, classes),
        "confusion_matrix": {"labels": classes, "matrix": confusion(y_true, proba, classes)},
        "roc": roc_points(y_true, proba, classes),
        "precision_recall": precision_recall_points(y_true, proba, classes),
        "confusion": confusion_points(y_true, proba, classes),
        "importance": permutation_importance(
            lambda f: onnx_predict(session, f, schema)[1],
            features.iloc[rows].reset_index(drop=True),
            y_true[rows],
            classes,
            importance_repeats,
            seed,
        ),
        "test_rows": len(test),
        "importance_rows": len(rows),
        "proba": proba,
        "y_true": y_true,
    }


# --------------------------------------------------------------------------- regression
def residual_points(y_true: np.ndarray, y_pred: np.ndarray) -> list[dict[str, float]]:
    """One point per test row: actual, predicted and residual (predicted - actual), for
    the residual and predicted-vs-actual plots."""
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return [
        {
            "actual": round(float(a), 6),
            "predicted": round(float(p), 6),
            "residual": round(float(p - a), 6),
        }
        for a, p in zip(y_true, y_pred, strict=True)
    ]


def regression_permutation_importance(
    predict: Callable[[pd.DataFrame], np.ndarray],
    features: pd.DataFrame,
    y_true: np.ndarray,
    repeats: int,
    seed: int,
) -> list[dict[str, float | str]]:
    """Rise in RMSE when one input column is shuffled (as `permutation_importance`)."""
    baseline = compute_regression_metrics(y_true, predict(features))["rmse"]

    def rise(shuffled: pd.DataFrame) -> float:
        return compute_regression_metrics(y_true, predict(shuffled))["rmse"] - baseline

    return shuffled_column_importance(features, rise, repeats, seed)


def evaluate_regression(
    onnx_model: bytes,
    test: pd.DataFrame,
    schema: dict[str, Any],
    importance_repeats: int,
    seed: int,
    importance_max_rows: int | None = None,
) -> dict[str, Any]:
    """`evaluate_model` for a regression model: values from the ONNX model."""
    from mlops_template.features import feature_frame, target_labels
    from mlops_template.train import onnx_predict_values, onnx_session, onnx_task

    session = onnx_session(onnx_model)
    if onnx_task(session) != "regression":
        raise ValueError(
            f"the ONNX model's task is {onnx_task(session)!r}; the schema's is regression"
        )
    features = feature_frame(test, schema)
    y_true = target_labels(test, schema)
    predicted = onnx_predict_values(session, features, schema)
    rows = importance_rows(len(features), importance_max_rows or len(features), seed)
    return {
        "task": "regression",
        "metrics": compute_regression_metrics(y_true, predicted),
        "notes": [note] if (note := mape_note(y_true)) else [],
        "residuals": residual_points(y_true, predicted),
        "importance": regression_permutation_importance(
            lambda f: onnx_predict_values(session, f, schema),
            features.iloc[rows].reset_index(drop=True),
            y_true[rows],
            importance_repeats,
            seed,
        ),
        "test_rows": len(test),
        "importance_rows": len(rows),
        "predictions": predicted,
        "y_true": y_true,
    }
