"""Building blocks for your own features (used in `user_model.feature_steps`).

Each block is a small sklearn transformer that reads raw numeric input columns and
appends one new numeric column, e.g. ``Ratio("income", "debt", name="income_per_debt")``.
The blocks sit in the model's Pipeline before the preprocessor, so training, the ONNX
model, evaluation and serving all compute the column the same way, and the serving API
still takes the raw input columns only. The preprocessor treats each new column like any
numeric feature (median imputation, scaling for linear models).

Why these work in ONNX too: every block registers an skl2onnx converter that emits the
same arithmetic in standard ONNX operators. sklearn computes the value in float32, as the
ONNX graph does, so both sides see bit-identical values (float32 +, -, *, / are exactly
rounded in both). A result that is not a finite number (a zero denominator, a missing
input, an overflow) is NaN on both sides, which the preprocessor's imputer fills.

Text length and date parts are not offered: they need string operations the default
ONNX domain lacks. A transformer of your own without an skl2onnx converter fails the
train stage with an error naming the step (train.to_onnx), never silently.

A feature step (a block, or a transformer of your own) declares `added_columns`: the
names of the numeric columns it appends, so the preprocessor can select them.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin


class FeatureStepError(ValueError):
    """A feature step's columns do not fit the data it is fitted on."""


class DerivedColumn(TransformerMixin, BaseEstimator):
    """Appends column `name` = `onnx_operator`(*inputs), computed in float32; a
    non-finite result is NaN."""

    # the ONNX operator (standard domain) that computes the value
    onnx_operator: ClassVar[str] = ""

    name: str

    @property
    def inputs(self) -> tuple[str, str]:
        raise NotImplementedError

    @property
    def added_columns(self) -> list[str]:
        return [self.name]

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _check_columns(self, frame: Any) -> None:
        what = f"{type(self).__name__} {self.name!r}"
        if not isinstance(frame, pd.DataFrame):
            raise FeatureStepError(f"{what}: needs the input table with column names")
        for column in self.inputs:
            if column not in frame.columns:
                raise FeatureStepError(
                    f"{what}: input column {column!r} not found (columns: {list(frame.columns)})"
                )
            if not pd.api.types.is_float_dtype(frame[column]):
                raise FeatureStepError(
                    f"{what}: input column {column!r} is not numeric ({frame[column].dtype})"
                )
        if self.name in frame.columns:
            raise FeatureStepError(f"{what}: a column named {self.name!r} already exists")

    def fit(self, X: pd.DataFrame, y: Any = None) -> DerivedColumn:
        self._check_columns(X)
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(X.columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        self._check_columns(X)
        left, right = (X[column].to_numpy(dtype=np.float32) for column in self.inputs)
        with np.errstate(all="ignore"):
            value = self._compute(left, right)
        value[~np.isfinite(value)] = np.nan
        out = X.copy()
        out[self.name] = value.astype(np.float64)
        return out

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray([*self.feature_names_in_, self.name], dtype=object)


class Ratio(DerivedColumn):
    """`name` = numerator / denominator (NaN where the denominator is 0)."""

    onnx_operator = "Div"

    def __init__(self, numerator: str, denominator: str, name: str) -> None:
        self.numerator = numerator
        self.denominator = denominator
        self.name = name

    @property
    def inputs(self) -> tuple[str, str]:
        return self.numerator, self.denominator

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return left / right


class LeftRightColumn(DerivedColumn):
    """A column from two others, `left` and `right` (the arithmetic is the subclass's)."""

    def __init__(self, left: str, right: str, name: str) -> None:
        self.left = left
        self.right = right
        self.name = name

    @property
    def inputs(self) -> tuple[str, str]:
        return self.left, self.right


class Product(LeftRightColumn):
    """`name` = left * right."""

    onnx_operator = "Mul"

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return left * right


class Difference(LeftRightColumn):
    """`name` = left - right."""

    onnx_operator = "Sub"

    def _compute(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return left - right


BLOCKS: tuple[type[DerivedColumn], ...] = (Ratio, Product, Difference)


# --------------------------------------------------------------------------------------
# skl2onnx: parser (the step passes every input through and adds one variable named like
# the new column, so the ColumnTransformer after it finds columns by name), shape
# calculator and converter.
# --------------------------------------------------------------------------------------


def _parse(scope: Any, model: DerivedColumn, inputs: list[Any], custom_parsers: Any = None) -> Any:
    from skl2onnx.common.data_types import FloatTensorType

    by_name = {variable.raw_name: variable for variable in inputs}
    operator = scope.declare_local_operator(_alias(type(model)), model)
    operator.inputs = [by_name[column] for column in model.inputs]
    added = scope.declare_local_variable(model.name, FloatTensorType([None, 1]))
    operator.outputs.append(added)
    return [*inputs, added]


def _shape(operator: Any) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = FloatTensorType([n, 1])


def _convert(scope: Any, operator: Any, container: Any) -> None:
    from onnx import TensorProto

    model: DerivedColumn = operator.raw_operator
    left, right = (variable.full_name for variable in operator.inputs)
    raw = scope.get_unique_variable_name("derived_raw")
    container.add_node(
        model.onnx_operator,
        [left, right],
        raw,
        name=scope.get_unique_operator_name(model.onnx_operator),
    )
    # +-inf (x / 0, overflow) -> NaN, as in `DerivedColumn.transform`; NaN stays NaN.
    infinite = scope.get_unique_variable_name("derived_is_inf")
    container.add_node("IsInf", [raw], infinite, name=scope.get_unique_operator_name("IsInf"))
    nan = scope.get_unique_variable_name("nan")
    container.add_initializer(nan, TensorProto.FLOAT, [], [float("nan")])
    container.add_node(
        "Where",
        [infinite, nan, raw],
        operator.outputs[0].full_name,
        name=scope.get_unique_operator_name("Where"),
    )


def _alias(cls: type) -> str:
    return f"MlopsTemplate{cls.__name__}"


def register_onnx_converters() -> None:
    """Make skl2onnx convert the blocks (idempotent). Called by train.to_onnx, not on
    import: skl2onnx and onnx take ~60 MB, which the train stage would otherwise hold
    through the model's fit, its memory peak (issue 11)."""
    from skl2onnx import update_registered_converter

    for cls in BLOCKS:
        update_registered_converter(cls, _alias(cls), _shape, _convert, parser=_parse)
