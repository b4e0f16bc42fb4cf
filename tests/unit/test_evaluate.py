"""Metric definitions (numpy) checked against scikit-learn's, curves, importance."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from mlops_template.evaluate import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    average_ranks,
    binary_roc_auc,
    compute_metrics,
    confusion,
    confusion_points,
    curve_classes,
    importance_rows,
    per_class_metrics,
    permutation_importance,
    positive_class,
    precision_recall_curve,
    precision_recall_points,
    roc_curve,
    roc_points,
)


def random_case(
    n: int, k: int, seed: int, ties: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    classes = [f"c{i}" for i in range(k)]
    y = np.asarray(classes)[rng.integers(0, k, n)]
    logits = rng.normal(size=(n, k)) + 1.5 * (y[:, None] == np.asarray(classes)[None, :])
    if ties:
        logits = np.round(logits)  # many equal scores
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba, classes


def sklearn_metrics(y: np.ndarray, proba: np.ndarray, classes: list[str]) -> dict[str, float]:
    y_pred = np.asarray(classes)[np.argmax(proba, axis=1)]
    if len(classes) == 2:
        auc = skm.roc_auc_score(y == classes[1], proba[:, 1])
    else:
        auc = skm.roc_auc_score(y, proba, multi_class="ovr", average="macro", labels=classes)
    return {
        "accuracy": skm.accuracy_score(y, y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, y_pred),
        "f1_macro": skm.f1_score(y, y_pred, labels=classes, average="macro", zero_division=0),
        "log_loss": skm.log_loss(y, np.clip(proba, 1e-15, 1), labels=classes),
        "roc_auc": auc,
    }


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_compute_metrics_equals_sklearn(k: int, ties: bool, seed: int) -> None:
    y, proba, classes = random_case(300, k, seed, ties)
    ours, theirs = compute_metrics(y, proba, classes), sklearn_metrics(y, proba, classes)
    assert set(ours) == set(CLASSIFICATION_METRICS)
    for name in ours:
        assert ours[name] == pytest.approx(theirs[name], abs=1e-12), name


def test_metrics_of_a_perfect_and_a_useless_model() -> None:
    y = np.array(["a", "b", "a", "b"])
    perfect = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.2, 0.8]])
    good = compute_metrics(y, perfect, ["a", "b"])
    assert (
        good["accuracy"] == good["balanced_accuracy"] == good["f1_macro"] == good["roc_auc"] == 1.0
    )
    flat = compute_metrics(y, np.full((4, 2), 0.5), ["a", "b"])
    assert flat["roc_auc"] == 0.5 and flat["log_loss"] == pytest.approx(math.log(2))


def test_roc_auc_is_nan_with_one_class_present() -> None:
    proba = np.array([[0.7, 0.3], [0.4, 0.6]])
    result = compute_metrics(np.array(["a", "a"]), proba, ["a", "b"])
    assert math.isnan(result["roc_auc"]) and result["accuracy"] == 0.5


def test_multiclass_auc_averages_the_classes_present() -> None:
    y, proba, classes = random_case(200, 3, 4)
    keep = y != "c2"
    result = compute_metrics(y[keep], proba[keep], classes)
    expected = np.mean(
        [binary_roc_auc(y[keep] == c, proba[keep][:, i]) for i, c in enumerate(classes[:2])]
    )
    assert result["roc_auc"] == pytest.approx(expected)
    # f1 of the absent class counts as 0 in the macro average, like sklearn's
    theirs = skm.f1_score(
        y[keep],
        np.asarray(classes)[proba[keep].argmax(1)],
        labels=classes,
        average="macro",
        zero_division=0,
    )
    assert result["f1_macro"] == pytest.approx(theirs)


def test_compute_metrics_refuses_bad_shapes_and_unknown_labels() -> None:
    with pytest.raises(ValueError, match="shape"):
        compute_metrics(np.array(["a", "b"]), np.ones((2, 3)) / 3, ["a", "b"])
    with pytest.raises(ValueError, match=r"\['z'\] are not among the classes"):
        compute_metrics(np.array(["a", "z"]), np.full((2, 2), 0.5), ["a", "b"])


def test_average_ranks_share_ties() -> None:
    np.testing.assert_array_equal(average_ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2])


def test_per_class_and_confusion_equal_sklearn() -> None:
    y, proba, classes = random_case(250, 3, 2)
    y_pred = np.asarray(classes)[proba.argmax(1)]
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        y, y_pred, labels=classes, zero_division=0
    )
    ours = per_class_metrics(y, proba, classes)
    for i, c in enumerate(classes):
        assert ours[c]["precision"] == pytest.approx(precision[i])
        assert ours[c]["recall"] == pytest.approx(recall[i])
        assert ours[c]["f1"] == pytest.approx(f1[i])
        assert ours[c]["support"] == support[i]
    assert confusion(y, proba, classes) == skm.confusion_matrix(y, y_pred, labels=classes).tolist()
    points = confusion_points(y, proba, classes)
    assert len(points) == len(y) and points[0] == {"actual": y[0], "predicted": y_pred[0]}


@pytest.mark.parametrize("ties", [False, True])
def test_curves_equal_sklearn(ties: bool) -> None:
    y, proba, _ = random_case(300, 2, 5, ties)
    truth, score = y == "c1", proba[:, 1]
    fpr, tpr = roc_curve(truth, score)
    sk_fpr, sk_tpr, _ = skm.roc_curve(truth, score, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    precision, recall = precision_recall_curve(truth, score)
    sk_precision, sk_recall, _ = skm.precision_recall_curve(truth, score, drop_intermediate=False)
    # sklearn lists thresholds low to high; ours high to low, both end at (1, 0)
    np.testing.assert_allclose(precision[:-1][::-1], sk_precision[:-1])
    np.testing.assert_allclose(recall[:-1][::-1], sk_recall[:-1])
    assert (precision[-1], recall[-1]) == (1.0, 0.0)


def test_curve_points_binary_and_multiclass() -> None:
    y, proba, classes = random_case(200, 2, 6)
    roc = roc_points(y, proba, classes)
    assert {r["class"] for r in roc} == {positive_class(classes)} == {"c1"}
    assert len(roc) == 101 and roc[0]["tpr"] == 0.0 and roc[-1]["tpr"] == 1.0
    tprs = [r["tpr"] for r in roc]
    assert tprs == sorted(tprs)
    y3, proba3, classes3 = random_case(200, 3, 7)
    assert curve_classes(classes3) == classes3
    assert len(roc_points(y3, proba3, classes3)) == 3 * 101
    pr = precision_recall_points(y3, proba3, classes3)
    assert len(pr) == 3 * 101 and all(0 <= r["precision"] <= 1 for r in pr)


def test_permutation_importance_finds_the_used_column() -> None:
    rng = np.random.default_rng(0)
    features = pd.DataFrame({"signal": rng.normal(size=400), "noise": rng.normal(size=400)})
    y = np.where(features["signal"] > 0, "b", "a")

    def predict(frame: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-3 * frame["signal"].to_numpy()))
        return np.column_stack([1 - p, p])

    rows = permutation_importance(predict, features, y, ["a", "b"], repeats=3, seed=0)
    assert [r["feature"] for r in rows] == ["signal", "noise"]
    assert rows[0]["importance"] > 0.3 and rows[1]["importance"] == 0.0
    again = permutation_importance(predict, features, y, ["a", "b"], repeats=3, seed=0)
    assert rows == again


def test_importance_rows_sample_is_seeded_and_bounded() -> None:
    np.testing.assert_array_equal(importance_rows(5, 10, 0), np.arange(5))
    sample = importance_rows(1000, 100, 3)
    assert len(sample) == 100 and len(set(sample)) == 100 and (np.diff(sample) > 0).all()
    np.testing.assert_array_equal(sample, importance_rows(1000, 100, 3))


def test_higher_is_better_directions() -> None:
    assert HIGHER_IS_BETTER == {
        "accuracy": True,
        "balanced_accuracy": True,
        "f1_macro": True,
        "roc_auc": True,
        "log_loss": False,
        "rmse": False,
        "mae": False,
        "r2": True,
        "mape": False,
    }
