"""The gate's reference models (fitted by the train stage): what each one scores, on which rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template.baseline import baseline_metrics, majority_proba
from mlops_template.data import frame_hash


def _schema(classes: list[str]) -> dict:
    return {
        "target": "y",
        "classes": classes,
        "features": [
            {"name": "x", "kind": "numeric"},
            {"name": "colour", "kind": "categorical"},
        ],
    }


def _frame(rows: int, seed: int, classes: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    cuts = np.quantile(x, np.linspace(0, 1, len(classes) + 1)[1:-1])
    y = np.asarray(classes)[np.searchsorted(cuts, x + rng.normal(scale=0.3, size=rows))]
    colour = rng.choice(["red", "blue", None], size=rows)
    return pd.DataFrame({"x": x, "colour": colour, "y": y})


@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c", "d"]])
def test_majority_is_chance_and_linear_learns(classes: list[str]) -> None:
    train, test = _frame(400, 0, classes), _frame(200, 1, classes)
    result = baseline_metrics(train, test, _schema(classes))
    majority, linear = result["models"]["majority"], result["models"]["linear"]
    assert majority["roc_auc"] == pytest.approx(0.5)
    assert majority["balanced_accuracy"] == pytest.approx(1 / len(classes))
    assert linear["roc_auc"] > 0.8 and linear["balanced_accuracy"] > majority["balanced_accuracy"]
    assert result["test_rows"] == 200 and result["test_hash"] == frame_hash(test)


def test_majority_predicts_the_training_frequencies() -> None:
    proba = majority_proba(np.array(["a", "b", "b", "b"]), ["a", "b", "c"], 2)
    assert proba.tolist() == [[0.25, 0.75, 0.0], [0.25, 0.75, 0.0]]


def test_train_rows_read_on_demand_give_the_same_baselines_and_are_freed() -> None:
    """The train stage hands baseline_metrics a reader of the train rows: the same
    figures as with the rows themselves, and the rows are freed once they are inputs."""
    import gc
    import weakref

    classes = ["no", "yes"]
    test = _frame(200, 1, classes)
    read: list[weakref.ref] = []

    def reader() -> pd.DataFrame:
        rows = _frame(400, 0, classes)
        read.append(weakref.ref(rows))
        return rows

    lazy = baseline_metrics(reader, test, _schema(classes))
    gc.collect()
    assert read and read[0]() is None
    assert lazy == baseline_metrics(_frame(400, 0, classes), test, _schema(classes))
