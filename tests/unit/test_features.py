"""Schema -> model inputs: one definition for training, evaluation, serving and monitoring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset

from mlops_template.config import DataParams
from mlops_template.features import (
    MISSING_CATEGORY,
    UNKNOWN_CATEGORY_CODE,
    build_preprocessor,
    categorical_features,
    category_text,
    column_median,
    feature_frame,
    feature_names,
    numeric_features,
    onnx_inputs,
    target_labels,
)
from mlops_template.validate import infer_schema

DATA = DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"])


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return mixed_dataset(rows=200)


@pytest.fixture(scope="module")
def schema(frame: pd.DataFrame) -> dict:
    return infer_schema(frame, DATA)


def test_feature_lists_follow_the_schema(schema: dict) -> None:
    assert numeric_features(schema) == ["x1", "x2"]
    assert categorical_features(schema) == ["color", "size"]
    assert feature_names(schema) == ["x1", "x2", "color", "size"]


def test_feature_frame_orders_columns_and_fixes_dtypes(frame: pd.DataFrame, schema: dict) -> None:
    shuffled = frame[["label", "size", "x2", "customer_id", "color", "x1"]]
    features = feature_frame(shuffled, schema)
    assert list(features.columns) == feature_names(schema)
    assert features["x1"].dtype == np.float64
    assert features["color"].dtype == object
    # missing categories become the empty string, missing numbers stay NaN
    assert (features["color"][frame["color"].isna()] == MISSING_CATEGORY).all()
    assert features["x2"].isna().sum() == frame["x2"].isna().sum()
    assert features.index.equals(frame.index)


def test_feature_frame_coerces_text_numbers_and_names_missing_columns(schema: dict) -> None:
    rows = pd.DataFrame(
        {"x1": ["1.5", "oops"], "x2": [1, 2], "color": ["red", None], "size": [1, "M"]}
    )
    features = feature_frame(rows, schema)
    assert features["x1"].tolist()[0] == 1.5 and np.isnan(features["x1"].tolist()[1])
    assert features["size"].tolist() == ["1", "M"]
    with pytest.raises(KeyError, match="x2"):
        feature_frame(rows.drop(columns="x2"), schema)


def test_target_labels_are_strings(frame: pd.DataFrame, schema: dict) -> None:
    labels = target_labels(
        frame.assign(label=frame["label"].map({"low": 0, "mid": 1, "high": 2})), schema
    )
    assert set(labels.tolist()) == {"0", "1", "2"}


def test_onnx_inputs_are_one_column_tensors(frame: pd.DataFrame, schema: dict) -> None:
    feeds = onnx_inputs(feature_frame(frame, schema), schema)
    assert list(feeds) == ["x1", "x2", "color", "size"]
    assert feeds["x1"].dtype == np.float32 and feeds["x1"].shape == (len(frame), 1)
    assert feeds["color"].dtype == object and feeds["color"].shape == (len(frame), 1)


def test_preprocessor_imputes_scales_and_ignores_unknown_categories(
    frame: pd.DataFrame, schema: dict
) -> None:
    pre = build_preprocessor(schema).fit(feature_frame(frame, schema))
    out = pre.transform(feature_frame(frame, schema))
    assert not np.isnan(out).any()
    # numeric columns are standardised
    np.testing.assert_allclose(out[:, :2].mean(axis=0), 0, atol=1e-9)
    new = frame.head(2).assign(color=["purple", None], size=["XXL", "S"])
    encoded = pre.transform(feature_frame(new, schema))
    names = list(pre.get_feature_names_out())
    color_columns = [i for i, n in enumerate(names) if n.startswith("categorical__color_")]
    # an unseen level encodes as all zeros; a missing one as the most frequent level
    assert encoded[0, color_columns].sum() == 0
    assert encoded[1, color_columns].sum() == 1


def test_preprocessor_for_numeric_only_schema(breast_cancer: pd.DataFrame) -> None:
    schema = infer_schema(breast_cancer, DataParams())
    pre = build_preprocessor(schema).fit(feature_frame(breast_cancer, schema))
    assert pre.transform(feature_frame(breast_cancer, schema)).shape == (569, 30)


def test_ordinal_preprocessor_codes_categories_and_marks_unknown_ones(
    frame: pd.DataFrame, schema: dict
) -> None:
    """Tree models (user_model.ordinal_categories): one column of codes per categorical
    feature, in sorted order of the training values; a missing value is imputed (the most
    frequent value's code), an unseen one is UNKNOWN_CATEGORY_CODE."""
    pre = build_preprocessor(schema, scale=False, ordinal=True).fit(feature_frame(frame, schema))
    names = list(pre.get_feature_names_out())
    assert names == ["numeric__x1", "numeric__x2", "categorical__color", "categorical__size"]
    levels = sorted(frame["color"].dropna().unique())
    most_frequent = frame["color"].value_counts().idxmax()
    new = frame.head(3).assign(color=["purple", None, levels[1]])
    encoded = pre.transform(feature_frame(new, schema))
    assert encoded.shape == (3, 4)
    assert encoded[:, 2].tolist() == [
        UNKNOWN_CATEGORY_CODE,
        levels.index(most_frequent),
        1,
    ]


def test_sparse_one_hot_holds_the_dense_values(schema: dict) -> None:
    """The linear baseline's one-hot columns as a sparse matrix: the same numbers (stored
    sparse when most of the matrix is zeros, as with many levels)."""
    many = mixed_dataset(rows=200).assign(color=[f"c{i % 40}" for i in range(200)])
    wide = infer_schema(many, DATA)
    features = feature_frame(many, wide)
    dense = build_preprocessor(wide).fit_transform(features)
    sparse = build_preprocessor(wide, sparse=True).fit_transform(features)
    assert hasattr(sparse, "toarray") and not hasattr(dense, "toarray")
    np.testing.assert_array_equal(sparse.toarray(), dense)


def test_category_text_is_str_of_each_value_one_object_per_value() -> None:
    values = pd.Series([1, "a", None, 1.0, -0.0, 0.0, "a", np.nan], dtype=object)
    text = category_text(values)
    expected = ["1", "a", MISSING_CATEGORY, "1.0", "-0.0", "0.0", "a", MISSING_CATEGORY]
    assert text.dtype == object and text.tolist() == expected
    assert text[1] is text[6]  # the rows of one value share its string
    arrow = category_text(pd.Series(["b", None, "b"], dtype="str"))
    assert arrow.tolist() == ["b", MISSING_CATEGORY, "b"] and arrow[0] is arrow[2]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_take_feature_frame_is_feature_frame_and_empties_the_source(
    frame: pd.DataFrame, schema: dict, dtype: type
) -> None:
    from mlops_template.features import take_feature_frame

    source = frame.sample(frac=1, axis=1, random_state=0).copy()
    expected = feature_frame(source, schema, dtype)
    taken = take_feature_frame(source, schema, dtype)
    pd.testing.assert_frame_equal(taken, expected)
    assert list(source.columns) == [] and len(source) == len(frame)
    with pytest.raises(KeyError, match="x2"):
        take_feature_frame(frame.drop(columns="x2"), schema)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows", [1, 2, 999, 1000])
def test_column_median_imputes_what_sklearns_median_imputes(dtype: type, rows: int) -> None:
    """The numeric imputer's strategy (column by column, for memory) finds the medians
    strategy="median" finds: odd and even counts, ties, a column with one value and an
    empty one (dropped by both), in both input dtypes."""
    import warnings

    from sklearn.impute import SimpleImputer

    rng = np.random.default_rng(rows)
    values = rng.normal(size=(rows, 5)).astype(dtype)
    values[rng.random(values.shape) < 0.2] = np.nan
    values[:, 1] = np.round(values[:, 1])  # ties
    values[1:, 2] = np.nan  # one value
    values[:, 3] = np.nan  # none
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "Skipping features without ..."
        ours = SimpleImputer(strategy=column_median).fit(values)
        sklearns = SimpleImputer(strategy="median").fit(values)
        imputed, expected = ours.transform(values), sklearns.transform(values)
    np.testing.assert_array_equal(ours.statistics_, sklearns.statistics_.astype(np.float64))
    assert imputed.dtype == dtype and imputed.shape[1] <= 4  # column 3 dropped
    np.testing.assert_array_equal(imputed, expected)


def test_column_median_of_no_values_is_nan() -> None:
    assert np.isnan(column_median(np.array([], dtype=np.float32)))
    assert column_median(np.array([3.0, 1.0, 2.0, 10.0])) == 2.5


def test_numeric_imputer_is_column_median() -> None:
    schema = {"features": [{"name": "x", "kind": "numeric"}], "target": "y"}
    imputer = build_preprocessor(schema).transformers[0][1].named_steps["impute"]
    assert imputer.strategy is column_median
