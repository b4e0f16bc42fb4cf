"""The one definition of every metric, numpy only.

The train stage (the gate's baselines), the evaluate stage, the PR comparison (with its
bootstrap) and the promotion gate all score predictions with `compute_metrics` or
`compute_regression_metrics`. A module of its own so that the train stage depends on the
definitions only, not on the evaluation's plots and importance (an edit there does not
retrain the model). No scikit-learn or scipy: that alone costs about a second per
process. The unit tests check each definition against scikit-learn's.
"""

from __future__ import annotations

import math

import numpy as np

# For each metric, whether a larger value is better (the gate and the report need it).
HIGHER_IS_BETTER = {
    "accuracy": True,
    "balanced_accuracy": True,
    "f1_macro": True,
    "roc_auc": True,
    "log_loss": False,
    # regression (compute_regression_metrics)
    "rmse": False,
    "mae": False,
    "r2": True,
    "mape": False,
}
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")
CLASSIFICATION_METRICS = tuple(m for m in HIGHER_IS_BETTER if m not in REGRESSION_METRICS)
_EPS = float(np.finfo(np.float64).eps)
LOG_LOSS_FLOOR = 1e-15


def positive_class(classes: list[str]) -> str:
    """For binary tasks the second class (sorted) is "positive", as in sklearn."""
    return classes[1]


def predicted_labels(proba: np.ndarray, classes: list[str]) -> np.ndarray:
    """The most probable class of each row (the first one on a tie, as numpy's argmax)."""
    return np.asarray(classes)[np.argmax(proba, axis=1)]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> np.ndarray:
    """counts[i, j] = rows of class classes[i] predicted as classes[j]."""
    index = {c: i for i, c in enumerate(classes)}
    k = len(classes)
    true_idx = np.array([index.get(str(v), -1) for v in y_true], dtype=np.int64)
    pred_idx = np.array([index.get(str(v), -1) for v in y_pred], dtype=np.int64)
    keep = (true_idx >= 0) & (pred_idx >= 0)
    flat = np.bincount(true_idx[keep] * k + pred_idx[keep], minlength=k * k)
    return flat.reshape(k, k)


def average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, ties sharing their average rank (scipy's rankdata 'average')."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse.reshape(-1)]


def binary_roc_auc(truth: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U; ties count one half). NaN if one class."""
    truth = np.asarray(truth, dtype=bool)
    n_pos = int(truth.sum())
    n_neg = len(truth) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = average_ranks(np.asarray(score, dtype=np.float64))
    return float((ranks[truth].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def compute_metrics(y_true: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Scalar metrics from true labels and class probabilities (columns in `classes` order).

    - accuracy: share of rows whose most probable class is the true class.
    - balanced_accuracy: mean recall over the classes present in `y_true`.
    - f1_macro: unweighted mean F1 over all `classes` (0 for a class never seen/predicted).
    - log_loss: mean -log p(true class), p clipped to [1e-15, 1], then to
      [eps, 1 - eps] as scikit-learn does (the PR comparison's bootstrap matches this).
    - roc_auc: binary: AUC of the positive (second) class; multiclass: unweighted mean of
      one-vs-rest AUCs over the classes present in `y_true`; NaN when `y_true` has fewer
      than two classes (the gate refuses NaN).
    """
    y_true = np.asarray(y_true).astype(str)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ValueError(f"proba has shape {proba.shape}; expected ({len(y_true)}, {len(classes)})")
    labels = list(classes)
    counts = confusion_matrix(y_true, predicted_labels(proba, labels), labels)
    tp = np.diag(counts).astype(np.float64)
    support = counts.sum(axis=1).astype(np.float64)
    predicted = counts.sum(axis=0).astype(np.float64)
    present = support > 0
    f1_denominator = support + predicted
    f1 = np.divide(2 * tp, f1_denominator, out=np.zeros_like(tp), where=f1_denominator > 0)

    index = {c: i for i, c in enumerate(labels)}
    true_idx = np.array([index.get(v, -1) for v in y_true], dtype=np.int64)
    if (true_idx < 0).any():
        unknown = sorted(set(y_true[true_idx < 0].tolist()))[:5]
        raise ValueError(f"labels {unknown} are not among the classes {labels}")
    p_true = np.clip(proba[np.arange(len(y_true)), true_idx], LOG_LOSS_FLOOR, 1.0)
    p_true = np.clip(p_true, _EPS, 1 - _EPS)

    if len(labels) == 2:
        roc_auc = binary_roc_auc(y_true == positive_class(labels), proba[:, 1])
    else:
        per_class = [binary_roc_auc(y_true == c, proba[:, i]) for i, c in enumerate(labels)]
        defined = [a for a in per_class if not math.isnan(a)]
        roc_auc = float(np.mean(defined)) if len(defined) >= 2 else math.nan
    if present.sum() < 2:
        roc_auc = math.nan
    n = len(y_true)
    return {
        "accuracy": float(tp.sum() / n) if n else math.nan,
        "balanced_accuracy": float(np.mean(tp[present] / support[present])) if n else math.nan,
        "f1_macro": float(np.mean(f1)),
        "log_loss": float(-np.mean(np.log(p_true))) if n else math.nan,
        "roc_auc": roc_auc,
    }


def compute_regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Scalar metrics of predicted values (the one definition, as for classification).

    - rmse: root mean squared error; mae: mean absolute error (target units).
    - r2: 1 - SSE / SST (NaN when the target is constant: SST = 0).
    - mape: mean |error| / |true value|; only when no true value is 0 (division by
      zero), else the key is absent (`mape_note` says why, for the report).
    """
    y_true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_pred)} predictions for {len(y_true)} true values")
    n = len(y_true)
    if n == 0:
        return {"rmse": math.nan, "mae": math.nan, "r2": math.nan}
    error = y_pred - y_true
    sse = float(np.sum(error**2))
    sst = float(np.sum((y_true - y_true.mean()) ** 2))
    metrics = {
        "rmse": math.sqrt(sse / n),
        "mae": float(np.mean(np.abs(error))),
        "r2": 1.0 - sse / sst if sst > 0 else math.nan,
    }
    if not (y_true == 0).any():
        metrics["mape"] = float(np.mean(np.abs(error) / np.abs(y_true)))
    return metrics


def mape_note(y_true: np.ndarray) -> str | None:
    """Why MAPE is missing from the metrics (None when it is there)."""
    zeros = int((np.asarray(y_true, dtype=np.float64) == 0).sum())
    if zeros:
        return f"mape omitted: {zeros} test row(s) have a true value of 0 (division by zero)"
    return None
