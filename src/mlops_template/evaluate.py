"""Metrics, curves and feature importance of a fitted model on the test set.

`compute_metrics` is the one definition of every metric: the evaluate stage, the PR
comparison (with its bootstrap) and the promotion gate all call it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

# For each metric, whether a larger value is better (the gate and the report need it).
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1_macro": True,
    "roc_auc": True,
    "log_loss": False,
}
CURVE_POINTS = 101  # curves are resampled to a fixed grid: small, diffable plot files


def positive_class(classes: list[str]) -> str:
    """For binary tasks the second class (sorted) is "positive", as in sklearn."""
    return classes[1]


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Scalar metrics from true labels and class probabilities (columns in `classes` order)."""
    from sklearn import metrics as m

    y_true = np.asarray(y_true).astype(str)
    labels = np.asarray(classes)
    y_pred = labels[np.argmax(proba, axis=1)]
    present = np.unique(y_true)
    out = {
        "accuracy": float(m.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(m.balanced_accuracy_score(y_true, y_pred)),
        "f1_macro": float(
            m.f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)
        ),
        "log_loss": float(m.log_loss(y_true, np.clip(proba, 1e-15, 1), labels=labels)),
    }
    if len(present) < 2:
        out["roc_auc"] = math.nan  # undefined on one class: NaN, and the gate refuses NaN
    elif len(classes) == 2:
        out["roc_auc"] = float(m.roc_auc_score(y_true == positive_class(classes), proba[:, 1]))
    else:
        out["roc_auc"] = float(
            m.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels)
        )
    return out


def per_class_metrics(
    y_true: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, dict[str, float]]:
    from sklearn.metrics import precision_recall_fscore_support

    y_pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    precision, recall, f1, support = precision_recall_fscore_support(
        np.asarray(y_true).astype(str), y_pred, labels=classes, zero_division=0
    )
    return {
        c: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for c, p, r, f, s in zip(classes, precision, recall, f1, support, strict=True)
    }


def confusion(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> list[list[int]]:
    from sklearn.metrics import confusion_matrix

    y_pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    return confusion_matrix(np.asarray(y_true).astype(str), y_pred, labels=classes).tolist()


def curve_classes(classes: list[str]) -> list[str]:
    """Binary: one curve for the positive class; multiclass: one-vs-rest per class."""
    return [positive_class(classes)] if len(classes) == 2 else list(classes)


def roc_points(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> list[dict[str, Any]]:
    from sklearn.metrics import roc_curve

    grid = np.linspace(0, 1, CURVE_POINTS)
    rows = []
    for c in curve_classes(classes):
        truth = np.asarray(y_true).astype(str) == c
        if truth.all() or not truth.any():
            continue
        fpr, tpr, _ = roc_curve(truth, proba[:, classes.index(c)])
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
    from sklearn.metrics import precision_recall_curve

    grid = np.linspace(0, 1, CURVE_POINTS)
    rows = []
    for c in curve_classes(classes):
        truth = np.asarray(y_true).astype(str) == c
        if not truth.any():
            continue
        precision, recall, _ = precision_recall_curve(truth, proba[:, classes.index(c)])
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
    y_pred = np.asarray(classes)[np.argmax(proba, axis=1)]
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
    families are comparable. One predict_proba per column and repeat, on the test set.
    """
    rng = np.random.default_rng(seed)
    baseline = compute_metrics(y_true, predict_proba(features), classes)
    metric = "roc_auc" if not math.isnan(baseline["roc_auc"]) else "log_loss"
    sign = 1.0 if HIGHER_IS_BETTER[metric] else -1.0
    rows = []
    for column in features.columns:
        drops = []
        for _ in range(repeats):
            shuffled = features.copy()
            shuffled[column] = rng.permutation(shuffled[column].to_numpy())
            score = compute_metrics(y_true, predict_proba(shuffled), classes)[metric]
            drops.append(sign * (baseline[metric] - score))
        rows.append(
            {
                "feature": column,
                "importance": round(float(np.mean(drops)), 6),
                "std": round(float(np.std(drops)), 6),
            }
        )
    rows.sort(key=lambda r: (-float(r["importance"]), str(r["feature"])))
    return rows


def evaluate_model(
    pipeline: Any,
    onnx_model: bytes,
    test: pd.DataFrame,
    schema: dict[str, Any],
    importance_repeats: int,
    seed: int,
) -> dict[str, Any]:
    """Everything the evaluate stage writes, computed from the model and the test set.

    Metrics come from the sklearn model; the permutation importance (hundreds of
    predictions) runs on its ONNX twin, which the train stage proved equal, ~100x faster.
    """
    from mlops_template.features import feature_frame, target_labels
    from mlops_template.train import onnx_predict, onnx_session

    session = onnx_session(onnx_model)

    classes = list(schema["classes"])
    features = feature_frame(test, schema)
    y_true = target_labels(test, schema)
    model_classes = [str(c) for c in pipeline.classes_]
    if model_classes != classes:
        raise ValueError(f"model classes {model_classes} differ from schema classes {classes}")
    proba = pipeline.predict_proba(features)
    return {
        "metrics": compute_metrics(y_true, proba, classes),
        "per_class": per_class_metrics(y_true, proba, classes),
        "confusion_matrix": {"labels": classes, "matrix": confusion(y_true, proba, classes)},
        "roc": roc_points(y_true, proba, classes),
        "precision_recall": precision_recall_points(y_true, proba, classes),
        "confusion": confusion_points(y_true, proba, classes),
        "importance": permutation_importance(
            lambda f: onnx_predict(session, f, schema)[1],
            features,
            y_true,
            classes,
            importance_repeats,
            seed,
        ),
        "test_rows": len(test),
        "proba": proba,
        "y_true": y_true,
    }
