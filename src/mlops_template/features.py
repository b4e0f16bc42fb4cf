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


def feature_frame(
    frame: pd.DataFrame, schema: dict[str, Any], numeric_dtype: Any = np.float64
) -> pd.DataFrame:
    """The model's input table: schema columns in schema order, with canonical dtypes.

    `numeric_dtype`: the numeric columns' dtype, float64 or float32 (the tree models'
    input, user_model.float32_input: the values the ONNX model, which computes in float32,
    compares with its thresholds)."""
    _check_columns(frame, schema)
    numeric = set(numeric_features(schema))
    out = {
        name: _feature_column(frame[name], name in numeric, numeric_dtype)
        for name in feature_names(schema)
    }
    return pd.DataFrame(out, index=frame.index)


def _check_columns(frame: pd.DataFrame, schema: dict[str, Any]) -> None:
    missing = [c for c in feature_names(schema) if c not in frame.columns]
    if missing:
        raise KeyError(f"missing feature column(s): {missing}")


def _feature_column(values: pd.Series, numeric: bool, numeric_dtype: Any) -> pd.Series:
    """One input column with its canonical dtype (feature_frame)."""
    if numeric:
        return pd.to_numeric(values, errors="coerce").astype(numeric_dtype)
    return category_text(values)


def take_feature_frame(
    frame: pd.DataFrame, schema: dict[str, Any], numeric_dtype: Any = np.float64
) -> pd.DataFrame:
    """feature_frame(frame, schema, numeric_dtype), built by removing each source column
    from `frame` as it is converted (`frame` is left without columns): a frame read with
    split blocks (data.read_parquet) gives each column's memory back before the next is
    converted, so the raw rows and the model inputs are never both whole in memory (the
    train stage's fit, 1e6 rows: issue 11)."""
    _check_columns(frame, schema)
    numeric = set(numeric_features(schema))
    index = frame.index
    out = {}
    for name in feature_names(schema):
        out[name] = _feature_column(frame.pop(name), name in numeric, numeric_dtype)
    for name in list(frame.columns):
        del frame[name]
    return pd.DataFrame(out, index=index, copy=False)


def category_text(values: pd.Series) -> pd.Series:
    """A categorical column as Python strings (object dtype), missing as MISSING_CATEGORY.

    Each distinct text becomes one string object that every row holding it shares: 8
    bytes a row rather than a string object per row (~60 bytes; 750k rows x 4 columns:
    24 MB instead of ~180 MB)."""
    text = values.astype(str).where(values.notna(), MISSING_CATEGORY)
    return pd.Series(_shared_strings(text), index=values.index, name=values.name, dtype=object)


def _shared_strings(text: pd.Series) -> np.ndarray:
    """TEXT's values as an object array holding one string object per distinct value."""
    codes, uniques = pd.factorize(text, use_na_sentinel=False)
    return np.asarray(uniques, dtype=object)[codes]


def is_regression(schema: dict[str, Any]) -> bool:
    """The schema's task (validate.infer_schema) is regression: a number per row."""
    return schema.get("task") == "regression"


def target_labels(frame: pd.DataFrame, schema: dict[str, Any]) -> np.ndarray:
    """Labels as strings: one label type for sklearn, ONNX and JSON alike (regression:
    the target values as float64)."""
    if is_regression(schema):
        return frame[schema["target"]].to_numpy(dtype=np.float64)
    return _shared_strings(frame[schema["target"]].astype(str))


def onnx_inputs(features: pd.DataFrame, schema: dict[str, Any]) -> dict[str, np.ndarray]:
    """One (n, 1) tensor per feature, as the converted pipeline expects."""
    feeds: dict[str, np.ndarray] = {}
    for name in numeric_features(schema):
        feeds[name] = features[name].to_numpy(dtype=np.float32).reshape(-1, 1)
    for name in categorical_features(schema):
        feeds[name] = features[name].to_numpy(dtype=object).reshape(-1, 1)
    return feeds


# `ordinal` encoding's code for a category not seen in training (known ones: 0..K-1)
UNKNOWN_CATEGORY_CODE = -1


def column_median(values: np.ndarray) -> float:
    """The median of one column's observed values (SimpleImputer's callable strategy; NaN
    for a column with none, which the imputer then drops as strategy="median" does).

    The same medians as strategy="median", found one column at a time: sklearn's median
    sorts a masked copy of the whole numeric block (np.ma.median), which was the train
    stage's peak memory (1e6 rows: ~150 MB over the rows themselves, bench/pipeline.py)."""
    return float(np.median(values)) if values.size else float("nan")


def build_preprocessor(
    schema: dict[str, Any],
    scale: bool = True,
    derived: Sequence[str] = (),
    ordinal: bool = False,
    sparse: bool = False,
    float32: bool = False,
) -> Any:
    """numeric: median impute (+ standard scaling when `scale`); categorical: most-frequent
    impute + one-hot that ignores categories unseen in training (serving must not fail on
    a new value). `derived`: numeric columns the feature steps before the preprocessor
    append (user_model.feature_steps), treated like the numeric features.

    `ordinal` (tree models, user_model.ordinal_categories): each categorical column
    becomes one column of codes (0..K-1 in sorted order of the training values; a value
    not seen in training: UNKNOWN_CATEGORY_CODE) instead of K one-hot columns. A tree
    splits on codes as well as on indicators, and the model's input stays one column per
    feature: with one-hot, 1e6 rows of 4 categoricals of 8-20 levels were a 72-column
    float64 matrix (430 MB) for 20 features. `sparse`: the one-hot columns as a sparse
    matrix (the linear baseline, baseline.linear_proba).

    Tree models take `scale=False`: splits do not care about scale, and scaling is where
    sklearn (float64) and ONNX (float32) part ways. A value sitting exactly on a split
    threshold (e.g. every imputed median when the threshold is that median) would land
    on different sides after two differently rounded scalings: parity failures of several
    percent in probability. Unscaled, both sides compare the same float32-rounded value
    with the same float32-rounded threshold.

    `float32` (user_model.float32_input): the model's input matrix in float32, the
    `ordinal` codes included (the numeric columns arrive in float32 from
    feature_frame(numeric_dtype=float32) and the imputer keeps their dtype).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    transformers = []
    numeric = numeric_features(schema) + list(derived)
    categorical = categorical_features(schema)
    if numeric:
        steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy=column_median))]
        if scale:
            steps.append(("scale", StandardScaler()))
        transformers.append(("numeric", Pipeline(steps), numeric))
    if categorical:
        encoder: tuple[str, Any] = (
            (
                "ordinal",
                OrdinalEncoder(
                    handle_unknown="use_encoded_value",
                    unknown_value=UNKNOWN_CATEGORY_CODE,
                    dtype=np.float32 if float32 else np.float64,
                ),
            )
            if ordinal
            else ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=sparse))
        )
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
                        encoder,
                    ]
                ),
                categorical,
            )
        )
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=True)
