"""From the schema to model inputs: one definition shared by training, evaluation, the
comparison, the serving API and the drift monitor, so they cannot disagree.

Numeric features are float; categorical features are strings with missing as "" (ONNX
string tensors have no NaN), which the pipeline's imputer treats as missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

MISSING_CATEGORY = ""


def numeric_features(schema: dict[str, Any]) -> list[str]:
    return [f["name"] for f in schema["features"] if f["kind"] == "numeric"]


def categorical_features(schema: dict[str, Any]) -> list[str]:
    return [f["name"] for f in schema["features"] if f["kind"] == "categorical"]


def feature_names(schema: dict[str, Any]) -> list[str]:
    return [f["name"] for f in schema["features"]]


def feature_frame(frame: pd.DataFrame, schema: dict[str, Any]) -> pd.DataFrame:
    """The model's input table: schema columns in schema order, with canonical dtypes."""
    missing = [c for c in feature_names(schema) if c not in frame.columns]
    if missing:
        raise KeyError(f"missing feature column(s): {missing}")
    out = {}
    for name in numeric_features(schema):
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    for name in categorical_features(schema):
        values = frame[name]
        text = values.astype(str).where(values.notna(), MISSING_CATEGORY)
        out[name] = text.astype(object)
    return pd.DataFrame(out, index=frame.index)[feature_names(schema)]


def is_regression(schema: dict[str, Any]) -> bool:
    """The schema's task (validate.infer_schema) is regression: a number per row."""
    return schema.get("task") == "regression"


def target_labels(frame: pd.DataFrame, schema: dict[str, Any]) -> np.ndarray:
    """Labels as strings: one label type for sklearn, ONNX and JSON alike (regression:
    the target values as float64)."""
    if is_regression(schema):
        return frame[schema["target"]].to_numpy(dtype=np.float64)
    return frame[schema["target"]].astype(str).to_numpy()


def onnx_inputs(features: pd.DataFrame, schema: dict[str, Any]) -> dict[str, np.ndarray]:
    """One (n, 1) tensor per feature, as the converted pipeline expects."""
    feeds: dict[str, np.ndarray] = {}
    for name in numeric_features(schema):
        feeds[name] = features[name].to_numpy(dtype=np.float32).reshape(-1, 1)
    for name in categorical_features(schema):
        feeds[name] = features[name].to_numpy(dtype=object).reshape(-1, 1)
    return feeds


def build_preprocessor(
    schema: dict[str, Any], scale: bool = True, derived: Sequence[str] = ()
) -> Any:
    """numeric: median impute (+ standard scaling when `scale`); categorical: most-frequent
    impute + one-hot that ignores categories unseen in training (serving must not fail on
    a new value). `derived`: numeric columns the feature steps before the preprocessor
    append (user_model.feature_steps), treated like the numeric features.

    Tree models take `scale=False`: splits do not care about scale, and scaling is where
    sklearn (float64) and ONNX (float32) part ways. A value sitting exactly on a split
    threshold (e.g. every imputed median when the threshold is that median) would land
    on different sides after two differently rounded scalings: parity failures of several
    percent in probability. Unscaled, both sides compare the same float32-rounded value
    with the same float32-rounded threshold.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    transformers = []
    numeric = numeric_features(schema) + list(derived)
    categorical = categorical_features(schema)
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        (
                            "impute",
                            SimpleImputer(
                                missing_values=MISSING_CATEGORY, strategy="most_frequent"
                            ),
                        ),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
