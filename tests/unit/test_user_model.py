"""The fork's own model and features (user_model.py, derived_features.py): the default
adds nothing; feature blocks compute the same values in sklearn and ONNX (a zero
denominator is NaN on both sides); what ONNX cannot convert is a clear error naming the
step; skops trusts the template's blocks by exact name only."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.ensemble import ExtraTreesClassifier, HistGradientBoostingClassifier
from tests.conftest import mixed_dataset

from mlops_template import user_model
from mlops_template.config import DataParams, SplitParams, TrainParams
from mlops_template.data import stratified_split
from mlops_template.derived_features import Difference, FeatureStepError, Product, Ratio
from mlops_template.features import feature_frame
from mlops_template.train import (
    ModelError,
    build_pipeline,
    check_parity,
    fit_pipeline,
    load_skops,
    missing_value_probes,
    onnx_predict,
    onnx_session,
    skops_bytes,
    to_onnx,
)
from mlops_template.validate import infer_schema

MODELS = ["logistic_regression", "random_forest", "hist_gradient_boosting"]
SMALL = {"random_forest": {"n_estimators": 20}, "hist_gradient_boosting": {"max_iter": 30}}


def small_params(model: str) -> TrainParams:
    return TrainParams.model_validate(
        {"model": model} | ({model: SMALL[model]} if model in SMALL else {})
    )


def ratio_dataset(rows: int = 500) -> pd.DataFrame:
    """The mixed dataset with a label driven by x1 / x2, so models lean on the ratio, and
    x2 = 0 (a zero denominator) in some rows."""
    frame = mixed_dataset(rows=rows, seed=3)
    rng = np.random.default_rng(4)
    frame.loc[rng.choice(rows, rows // 10, replace=False), "x2"] = 0.0
    ratio = (frame["x1"] / frame["x2"].replace(0.0, np.nan)).fillna(0.0)
    frame["label"] = np.select([ratio < -0.05, ratio < 0.1], ["low", "mid"], "high")
    return frame


@pytest.fixture(scope="module")
def ratio_data() -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    frame = ratio_dataset()
    schema = infer_schema(frame, DataParams(target="label", id_columns=["customer_id"]))
    train, test = stratified_split(frame, "label", SplitParams(seed=0))
    return train, test, schema


def with_ratio_steps(params: TrainParams, schema: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("x1_per_x2", Ratio("x1", "x2", name="x1_per_x2")),
        ("x1_times_ratio", Product("x1", "x1_per_x2", name="x1_times_ratio")),
        ("x2_minus_x1", Difference("x2", "x1", name="x2_minus_x1")),
    ]


@pytest.mark.parametrize("model", MODELS)
def test_default_user_model_adds_no_feature_step(model: str, ratio_data: tuple) -> None:
    """Defaults unchanged: [preprocess, model] and the built-in estimator of train.model."""
    _, _, schema = ratio_data
    pipeline = build_pipeline(schema, small_params(model))
    assert [name for name, _ in pipeline.steps] == ["preprocess", "model"]
    assert (
        type(pipeline.named_steps["model"]).__name__
        == {
            "logistic_regression": "LogisticRegression",
            "random_forest": "RandomForestClassifier",
            "hist_gradient_boosting": "HistGradientBoostingClassifier",
        }[model]
    )
    scaled = "scale" in dict(pipeline.named_steps["preprocess"].transformers[0][1].steps)
    assert scaled == (model == "logistic_regression")


def test_ratio_is_float32_and_nan_where_not_finite() -> None:
    frame = pd.DataFrame(
        {"a": [1.0, 1.0, 0.0, np.nan, 3.0, 1e30], "b": [3.0, 0.0, 0.0, 2.0, -2.0, 1e-30]}
    )
    out = Ratio("a", "b", name="a_per_b").fit(frame).transform(frame)
    expected = np.float32(1.0) / np.float32(3.0)
    assert out["a_per_b"].iloc[0] == float(expected)  # float32 arithmetic, as in ONNX
    assert out["a_per_b"].iloc[4] == -1.5
    # x/0, 0/0, a missing input and a float32 overflow: NaN (the imputer's job)
    assert out["a_per_b"].iloc[[1, 2, 3, 5]].isna().all()
    assert list(out.columns) == ["a", "b", "a_per_b"]
    assert list(frame.columns) == ["a", "b"]  # the input table is not modified


def test_feature_block_names_a_missing_or_non_numeric_column() -> None:
    frame = pd.DataFrame({"a": [1.0], "color": ["red"]})
    with pytest.raises(FeatureStepError, match=r"Ratio 'r': input column 'nope' not found"):
        Ratio("a", "nope", name="r").fit(frame)
    with pytest.raises(FeatureStepError, match=r"input column 'color' is not numeric"):
        Product("a", "color", name="p").fit(frame)
    with pytest.raises(FeatureStepError, match=r"a column named 'a' already exists"):
        Ratio("a", "a", name="a").fit(frame)


@pytest.mark.parametrize("model", MODELS)
def test_feature_steps_give_the_same_predictions_in_onnx(
    model: str, ratio_data: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pipeline [ratio, product, difference, preprocess, model]: ONNX matches sklearn on
    the test rows (zero denominators included) and with nulls in every feature."""
    train, test, schema = ratio_data
    monkeypatch.setattr(user_model, "feature_steps", with_ratio_steps)
    pipeline = fit_pipeline(train, schema, small_params(model))
    assert [n for n, _ in pipeline.steps][:3] == ["x1_per_x2", "x1_times_ratio", "x2_minus_x1"]
    numeric_columns = pipeline.named_steps["preprocess"].transformers_[0][2]
    assert numeric_columns == ["x1", "x2", "x1_per_x2", "x1_times_ratio", "x2_minus_x1"]
    onnx_model = to_onnx(pipeline, schema)
    assert (test["x2"] == 0).sum() >= 5
    parity = check_parity(pipeline, onnx_model, test, schema, tolerance=1e-5)
    assert parity.passed, parity
    probes = check_parity(
        pipeline, onnx_model, missing_value_probes(test, schema), schema, tolerance=1e-5
    )
    assert probes.passed, probes


def test_zero_denominator_is_imputed_alike_in_sklearn_and_onnx(
    ratio_data: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zero denominator is NaN, then the training median of the ratio, on both sides:
    the logistic regression (which weighs the ratio) scores those rows identically."""
    train, test, schema = ratio_data
    monkeypatch.setattr(
        user_model, "feature_steps", lambda p, s: [("r", Ratio("x1", "x2", name="x1_per_x2"))]
    )
    pipeline = fit_pipeline(train, schema, small_params("logistic_regression"))
    zero = test[test["x2"] == 0]
    features = feature_frame(zero, schema)
    derived = pipeline.named_steps["r"].transform(features)["x1_per_x2"]
    assert derived.isna().all()
    # the ratio matters to the model: imputing it with something else changes the answer
    coef = pipeline.named_steps["model"].coef_
    assert np.abs(coef[:, 2]).max() > 0.1
    _, onnx_proba = onnx_predict(onnx_session(to_onnx(pipeline, schema)), features, schema)
    np.testing.assert_allclose(onnx_proba, pipeline.predict_proba(features), atol=1e-6)


def test_a_different_estimator_from_the_user_module(
    ratio_data: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The README's example: an ExtraTreesClassifier with train.random_forest's settings."""
    train, test, schema = ratio_data

    def extra_trees(params: TrainParams) -> Any:
        hp = params.random_forest.model_dump()
        return ExtraTreesClassifier(random_state=params.seed, n_jobs=1, **hp)

    monkeypatch.setattr(user_model, "build_estimator", extra_trees)
    monkeypatch.setattr(user_model, "feature_steps", with_ratio_steps)
    params = small_params("random_forest")
    pipeline = fit_pipeline(train, schema, params)
    assert isinstance(pipeline.named_steps["model"], ExtraTreesClassifier)
    assert pipeline.named_steps["model"].n_estimators == 20
    parity = check_parity(pipeline, to_onnx(pipeline, schema), test, schema, tolerance=1e-5)
    assert parity.passed, parity


class MedianThresholdClassifier(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx knows nothing about."""

    def fit(self, X: Any, y: Any) -> MedianThresholdClassifier:
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.full((len(X), len(self.classes_)), 1 / len(self.classes_))

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[np.zeros(len(X), dtype=int)]


class TextLength(TransformerMixin, BaseEstimator):
    """A feature step of the fork's own, without a converter (strings: no ONNX op)."""

    added_columns: ClassVar[list[str]] = ["color_length"]

    def fit(self, X: pd.DataFrame, y: Any = None) -> TextLength:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X.assign(color_length=X["color"].str.len().astype(float))


def test_an_estimator_onnx_cannot_convert_is_an_error_naming_the_step(
    ratio_data: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _, schema = ratio_data
    monkeypatch.setattr(user_model, "build_estimator", lambda p: MedianThresholdClassifier())
    pipeline = fit_pipeline(train, schema, small_params("logistic_regression"))
    with pytest.raises(ModelError) as caught:
        to_onnx(pipeline, schema)
    message = str(caught.value)
    assert "pipeline step 'model'" in message
    assert f"{__name__}.MedianThresholdClassifier" in message
    assert "has no skl2onnx converter" in message
    assert "src/mlops_template/user_model.py" in message
    assert "update_registered_converter" in message


def test_a_feature_step_onnx_cannot_convert_is_an_error_naming_the_step(
    ratio_data: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    train, _, schema = ratio_data
    monkeypatch.setattr(user_model, "feature_steps", lambda p, s: [("text_length", TextLength())])
    pipeline = fit_pipeline(train, schema, small_params("hist_gradient_boosting"))
    # sklearn uses the column: the step is real, only its export is missing
    assert "color_length" in pipeline.named_steps["preprocess"].transformers_[0][2]
    with pytest.raises(ModelError, match=r"pipeline step 'text_length' \(.*\.TextLength\)"):
        to_onnx(pipeline, schema)


def test_other_conversion_failures_are_a_model_error_listing_the_steps(
    ratio_data: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A registered converter that fails: skl2onnx's message, and which steps there were."""
    import skl2onnx

    train, _, schema = ratio_data
    pipeline = fit_pipeline(train, schema, small_params("hist_gradient_boosting"))

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("opset too old for this operator")

    monkeypatch.setattr(skl2onnx, "convert_sklearn", broken)
    with pytest.raises(ModelError) as caught:
        to_onnx(pipeline, schema)
    message = str(caught.value)
    assert (
        "pipeline steps: preprocess (ColumnTransformer), model (HistGradientBoostingClassifier)"
        in message
    )
    assert "RuntimeError: opset too old for this operator" in message


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        (
            lambda p, s: [("ratio", object())],
            r"step 'ratio' \(object\) does not declare `added_columns`",
        ),
        (lambda p, s: [("model", Ratio("x1", "x2", name="r"))], r"step name 'model' is reserved"),
        (lambda p, s: [Ratio("x1", "x2", name="r")], r"is not a \(name, transformer\) pair"),
        (lambda p, s: [("r", Ratio("x1", "x2", name="x1"))], r"added column\(s\) \['x1'\] clash"),
        (
            lambda p, s: [("a", Ratio("x1", "x2", name="r")), ("b", Product("x1", "x2", name="r"))],
            r"added column\(s\) \['r'\] clash",
        ),
    ],
    ids=["undeclared-columns", "reserved-name", "not-a-pair", "clash-input", "clash-step"],
)
def test_malformed_feature_steps_are_refused_before_training(
    steps: Any, problem: str, ratio_data: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, schema = ratio_data
    monkeypatch.setattr(user_model, "feature_steps", steps)
    with pytest.raises(ModelError, match=rf"user_model\.feature_steps: .*{problem}"):
        build_pipeline(schema, small_params("hist_gradient_boosting"))


def test_skops_round_trip_trusts_the_template_blocks(
    ratio_data: tuple, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    train, test, schema = ratio_data
    monkeypatch.setattr(user_model, "feature_steps", with_ratio_steps)
    pipeline = fit_pipeline(train, schema, small_params("hist_gradient_boosting"))
    path = tmp_path / "model.skops"
    path.write_bytes(skops_bytes(pipeline))
    loaded = load_skops(path)
    assert isinstance(loaded.named_steps["x1_per_x2"], Ratio)
    features = feature_frame(test, schema)
    np.testing.assert_array_equal(loaded.predict_proba(features), pipeline.predict_proba(features))


class Ratio2(Ratio):
    """Looks like a block, lives elsewhere: not trusted."""


def test_skops_refuses_feature_steps_outside_the_template_blocks(
    ratio_data: tuple, tmp_path: Path
) -> None:
    import skops.io as sio
    from sklearn.pipeline import Pipeline

    train, _, schema = ratio_data
    frame = feature_frame(train, schema)
    model = Pipeline(
        [("r", Ratio2("x1", "x2", name="r")), ("m", HistGradientBoostingClassifier(max_iter=5))]
    )
    model.fit(frame[["x1", "x2"]], train["label"])
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(model))
    with pytest.raises(ModelError, match=rf"{__name__}\.Ratio2"):
        load_skops(path)


def _readme_example() -> str:
    from tests.helpers import TEMPLATE_ROOT

    readme = (TEMPLATE_ROOT / "README.md").read_text()
    found = re.search(r"### Your own model and features.*?```python\n(.*?)```", readme, re.S)
    assert found, "README has no 'Your own model and features' example"
    return found.group(1)


def _docstring_example() -> str:
    doc = user_model.__doc__ or ""
    found = re.search(r"Example \(.*?\)::\n\n(.*?)\n\n(?=\S)", doc, re.S)
    assert found, "user_model.py's docstring has no example"
    return textwrap.dedent(found.group(1))


@pytest.mark.parametrize("source", [_readme_example, _docstring_example], ids=["readme", "module"])
def test_the_documented_example_trains_and_exports(
    source: Any, breast_cancer: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The example the README and user_model.py show, pasted into user_model, works."""
    namespace: dict[str, Any] = {}
    exec(source(), namespace)
    monkeypatch.setattr(user_model, "build_estimator", namespace["build_estimator"])
    monkeypatch.setattr(user_model, "feature_steps", namespace["feature_steps"])
    train, test = stratified_split(breast_cancer, "target", SplitParams())
    schema = infer_schema(breast_cancer, DataParams())
    pipeline = fit_pipeline(train, schema, small_params("random_forest"))
    assert [n for n, _ in pipeline.steps] == ["area_per_radius", "preprocess", "model"]
    assert isinstance(pipeline.named_steps["model"], ExtraTreesClassifier)
    parity = check_parity(pipeline, to_onnx(pipeline, schema), test, schema, tolerance=1e-5)
    assert parity.passed, parity


def test_train_info_records_what_user_model_changed_and_nothing_by_default(
    ratio_data: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_template.train import custom_steps_record

    train, _, schema = ratio_data
    params = small_params("random_forest")
    assert custom_steps_record(fit_pipeline(train, schema, params), params) == {}

    monkeypatch.setattr(
        user_model,
        "build_estimator",
        lambda p: ExtraTreesClassifier(n_estimators=5, random_state=p.seed),
    )
    monkeypatch.setattr(
        user_model, "feature_steps", lambda p, s: [("r", Ratio("x1", "x2", name="x1_per_x2"))]
    )
    record = custom_steps_record(fit_pipeline(train, schema, params), params)
    assert record == {
        "estimator": "sklearn.ensemble._forest.ExtraTreesClassifier",
        "feature_steps": [
            {"name": "r", "class": "mlops_template.derived_features.Ratio", "adds": ["x1_per_x2"]}
        ],
    }


def test_the_model_card_names_the_estimator_and_feature_steps() -> None:
    from types import SimpleNamespace

    from mlops_template.model_card import _params_section

    info = {
        "model": "random_forest",
        "seed": 1,
        "hyperparameters": {"n_estimators": 10},
        "estimator": "sklearn.ensemble._forest.ExtraTreesClassifier",
        "feature_steps": [
            {"name": "r", "class": "mlops_template.derived_features.Ratio", "adds": ["x1_per_x2"]}
        ],
    }
    lines = _params_section(SimpleNamespace(train_info=info, params={}, model_sha256={}))
    assert lines[4:7] == [
        "Estimator `sklearn.ensemble._forest.ExtraTreesClassifier` "
        "(src/mlops_template/user_model.py).",
        "Feature step `r` (`mlops_template.derived_features.Ratio`) adds `x1_per_x2`.",
        "",
    ]
    assert lines[7] == "| Parameter | Value |"
    default = _params_section(
        SimpleNamespace(train_info={"model": "random_forest"}, params={}, model_sha256={})
    )
    assert not any("Estimator" in line or "Feature step" in line for line in default)


@pytest.mark.parametrize(
    ("model", "ordinal"),
    [
        ("logistic_regression", False),
        ("ridge", False),
        ("random_forest", True),
        ("hist_gradient_boosting", True),
        ("lightgbm", True),
        ("xgboost", True),
    ],
)
def test_tree_models_get_category_codes_and_linear_ones_one_hot(model: str, ordinal: bool) -> None:
    assert user_model.ordinal_categories(TrainParams(model=model)) is ordinal


def test_feature_blocks_do_not_load_skl2onnx_until_the_export() -> None:
    """Importing the blocks (user_model does) leaves skl2onnx and onnx unloaded: the train
    stage's fit, its memory peak, runs without them (~60 MB); train.to_onnx registers the
    blocks' converters when it exports."""
    import subprocess
    import sys

    code = (
        "import sys; import mlops_template.user_model, mlops_template.derived_features; "
        "print(sorted(m for m in ('skl2onnx', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
