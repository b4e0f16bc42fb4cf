"""Reference models for the quality gate: what "good" means on *this* dataset.

An absolute floor (roc_auc >= 0.9) only fits the dataset it was tuned on. The train
stage also fits two reference models on the same train rows and scores them on the
same test rows as the real model, and the gate (`gate.baseline`, compare.decide_gate)
asks the model to beat them by a margin:

- `majority`: predicts the training class frequencies for every row (the most frequent
  class wins): roc_auc 0.5, balanced accuracy 1/K. Beating it = the model learned
  anything at all.
- `linear`: a logistic regression with fixed default settings on the template's own
  preprocessing (median / most-frequent imputation, scaling, one-hot). Not trailing it
  by much = the model is not broken, mis-tuned or badly overfitted.

The result records the test set's content hash, so the gate can refuse a baseline that
was scored on other rows than the comparison's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.config import LogisticRegressionParams
from mlops_template.data import frame_hash
from mlops_template.features import (
    build_preprocessor,
    feature_frame,
    is_regression,
    target_labels,
)
from mlops_template.files import json_number
from mlops_template.metrics import compute_metrics, compute_regression_metrics

# The linear baseline's fit goes through BLAS, whose kernels differ between CPUs (AVX2,
# AVX-512): its log loss came out 1e-17 apart on two machines, so eval/baseline.json and
# dvc.lock differed. Twelve significant digits are far beyond what the gate compares and
# the same on every machine (barring a value on a rounding boundary).
SIGNIFICANT_DIGITS = 12


def _stable(value: Any) -> Any:
    number = json_number(value)
    return float(f"{number:.{SIGNIFICANT_DIGITS}g}") if isinstance(number, float) else number


def majority_proba(train_labels: np.ndarray, classes: list[str], rows: int) -> np.ndarray:
    """The training class frequencies, the same for every row."""
    counts = pd.Series(train_labels).astype(str).value_counts()
    prior = np.array([counts.get(c, 0) for c in classes], dtype=np.float64)
    return np.tile(prior / prior.sum(), (rows, 1))


def linear_proba(
    features: Callable[[], pd.DataFrame],
    labels: np.ndarray,
    test: pd.DataFrame,
    schema: dict[str, Any],
    seed: int,
) -> np.ndarray:
    """A default logistic regression's class probabilities on TEST (columns: classes),
    fitted on `features()` (the train rows' model inputs, freed once preprocessed) and
    `labels`.

    Built here, not by user_model: the reference stays the template's own preprocessing
    and model whatever features and estimator a fork plugs in."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from mlops_template.train import feature_chunks, fit_in_steps

    settings = LogisticRegressionParams()
    pipeline = Pipeline(
        [
            # one-hot columns as a sparse matrix: 1e6 rows with 4 categoricals of 8-20
            # levels make a 72-column matrix with 20 values a row (the same fit; sklearn
            # stores it dense when it is mostly values, e.g. without categoricals)
            ("preprocess", build_preprocessor(schema, scale=True, sparse=True)),
            ("model", LogisticRegression(random_state=seed, **settings.model_dump())),
        ]
    )
    fit_in_steps(pipeline, features, labels)
    proba = np.concatenate([pipeline.predict_proba(part) for part in feature_chunks(test, schema)])
    fitted = [str(c) for c in pipeline.classes_]
    return proba[:, [fitted.index(str(c)) for c in schema["classes"]]]


def baseline_metrics(
    train: pd.DataFrame | Callable[[], pd.DataFrame],
    test: pd.DataFrame,
    schema: dict[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """Metrics of each baseline on TEST (metrics.compute_metrics, the one definition;
    an undefined metric is null). Regression: `mean` and `linear` (a ridge regression),
    scored by metrics.compute_regression_metrics.

    `train`: the train rows, or a function that reads them: the rows are then freed once
    they are model inputs (peak memory of the train stage). The result records how many
    train rows the baselines were fitted on (`train_rows`: the train stage passes a
    sample of at most train.baseline_max_rows)."""
    rows = [train() if callable(train) else train]
    y_train = target_labels(rows[0], schema)

    def features() -> pd.DataFrame:
        return feature_frame(rows.pop(), schema)

    train_rows = len(y_train)
    if is_regression(schema):
        return {"train_rows": train_rows} | regression_baseline_metrics(
            features, y_train, test, schema, seed
        )
    classes = [str(c) for c in schema["classes"]]
    y_test = target_labels(test, schema)
    probas = {
        "majority": majority_proba(y_train, classes, len(test)),
        "linear": linear_proba(features, y_train, test, schema, seed),
    }
    return {
        "train_rows": train_rows,
        "test_rows": len(test),
        "test_hash": frame_hash(test),
        "models": {
            name: {k: _stable(v) for k, v in compute_metrics(y_test, proba, classes).items()}
            for name, proba in probas.items()
        },
    }


def mean_values(train_values: np.ndarray, rows: int) -> np.ndarray:
    """The training target's mean for every row: R^2 about 0 on the test rows."""
    return np.full(rows, float(np.mean(np.asarray(train_values, dtype=np.float64))))


def linear_values(
    features: Callable[[], pd.DataFrame],
    labels: np.ndarray,
    test: pd.DataFrame,
    schema: dict[str, Any],
    seed: int,
) -> np.ndarray:
    """A default ridge regression's predictions on TEST (the template's preprocessing),
    fitted on `features()` (freed once preprocessed) and `labels`."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline

    from mlops_template.train import feature_chunks, fit_in_steps

    pipeline = Pipeline(
        [
            # dense: with sparse input Ridge would pick an iterative solver
            ("preprocess", build_preprocessor(schema, scale=True)),
            ("model", Ridge(alpha=1.0, random_state=seed)),
        ]
    )
    fit_in_steps(pipeline, features, labels)
    return np.concatenate(
        [
            np.asarray(pipeline.predict(part), dtype=np.float64)
            for part in feature_chunks(test, schema)
        ]
    )


def regression_baseline_metrics(
    features: Callable[[], pd.DataFrame],
    y_train: np.ndarray,
    test: pd.DataFrame,
    schema: dict[str, Any],
    seed: int = 0,
) -> dict[str, Any]:
    """The regression baselines: `mean` (gate.baseline.majority's counterpart; the name
    majority is accepted for it) and `linear` (ridge), fitted on `features()` and
    `y_train`."""
    y_test = target_labels(test, schema)
    values = {
        "mean": mean_values(y_train, len(test)),
        "linear": linear_values(features, y_train, test, schema, seed),
    }
    return {
        "test_rows": len(test),
        "test_hash": frame_hash(test),
        "models": {
            name: {k: _stable(v) for k, v in compute_regression_metrics(y_test, pred).items()}
            for name, pred in values.items()
        },
    }
