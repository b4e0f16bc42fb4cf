"""Regression training: the built-in regressors, ONNX export and value parity, skops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_regression_dataset

from mlops_template import user_model
from mlops_template.config import DataParams, SplitParams, TrainParams
from mlops_template.data import load_builtin, stratified_split
from mlops_template.features import feature_frame, target_labels
from mlops_template.train import (
    ModelError,
    build_pipeline,
    check_value_parity,
    fit_pipeline,
    load_skops,
    missing_value_probes,
    onnx_predict_values,
    onnx_session,
    onnx_task,
    skops_bytes,
    to_onnx,
    train_info,
)
from mlops_template.validate import infer_schema

MODELS = ["ridge", "random_forest", "hist_gradient_boosting"]
REGRESSORS = {
    "ridge": "Ridge",
    "random_forest": "RandomForestRegressor",
    "hist_gradient_boosting": "HistGradientBoostingRegressor",
}
FAST = {"random_forest": {"n_estimators": 20}, "hist_gradient_boosting": {"max_iter": 30}}


def fast_params(model: str, seed: int = 42) -> TrainParams:
    return TrainParams.model_validate(
        {"model": model, "seed": seed} | ({model: FAST[model]} if model in FAST else {})
    )


@pytest.fixture(scope="module", params=["diabetes", "mixed"])
def dataset(request: pytest.FixtureRequest) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    if request.param == "diabetes":
        frame = load_builtin("diabetes")
        data = DataParams(source="sklearn:diabetes")
    else:
        frame = mixed_regression_dataset(rows=400)
        data = DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"])
    schema = infer_schema(frame, data)
    train, test = stratified_split(frame, data.target, SplitParams(), schema["task"])
    return train, test, schema


def test_the_schema_is_a_regression_one(dataset: tuple) -> None:
    _, _, schema = dataset
    assert schema["task"] == "regression" and "classes" not in schema


@pytest.mark.parametrize("model", MODELS)
def test_builtin_models_become_regressors_with_onnx_value_parity(
    dataset: tuple, model: str
) -> None:
    train, test, schema = dataset
    params = fast_params(model)
    pipeline = fit_pipeline(train, schema, params)
    assert type(pipeline.steps[-1][1]).__name__ == REGRESSORS[model]
    onnx_model = to_onnx(pipeline, schema)
    session = onnx_session(onnx_model)
    assert onnx_task(session) == "regression"
    assert "classes" not in session.get_modelmeta().custom_metadata_map
    values = onnx_predict_values(session, feature_frame(test, schema), schema)
    assert values.shape == (len(test),) and np.isfinite(values).all()
    # a real model, not a constant: it explains part of the target's variance
    y = target_labels(test, schema)
    assert np.mean((values - y) ** 2) < np.var(y)
    parity = check_value_parity(pipeline, onnx_model, test, schema, params.onnx_value_tolerance)
    assert parity.passed and parity.rows == len(test)
    probes = missing_value_probes(test, schema)
    assert check_value_parity(pipeline, onnx_model, probes, schema, 1e-3).passed
    info = train_info(params, parity, skops_bytes(pipeline), onnx_model, len(train))
    assert info["parity"]["mismatches"] == 0 and "estimator" not in info


def test_value_parity_catches_a_different_model(dataset: tuple) -> None:
    train, test, schema = dataset
    pipeline = fit_pipeline(train, schema, fast_params("hist_gradient_boosting"))
    other = to_onnx(fit_pipeline(train, schema, fast_params("ridge")), schema)
    parity = check_value_parity(pipeline, other, test, schema, 1e-3)
    assert not parity.passed and parity.mismatches > len(test) // 2


def test_skops_round_trip_predicts_the_same(dataset: tuple, tmp_path: Path) -> None:
    train, test, schema = dataset
    pipeline = fit_pipeline(train, schema, fast_params("random_forest"))
    path = tmp_path / "model.skops"
    path.write_bytes(skops_bytes(pipeline))
    loaded = load_skops(path)
    features = feature_frame(test, schema)
    np.testing.assert_array_equal(loaded.predict(features), pipeline.predict(features))


def test_class_weight_on_a_regression_target_names_the_key(dataset: tuple) -> None:
    _, _, schema = dataset
    params = TrainParams.model_validate(
        {"model": "random_forest", "random_forest": {"class_weight": "balanced"}}
    )
    with pytest.raises(ModelError, match=r"train\.random_forest\.class_weight: 'balanced'"):
        build_pipeline(schema, params)


def test_a_classifier_for_a_regression_target_is_refused(
    dataset: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.linear_model import LogisticRegression

    _, _, schema = dataset
    monkeypatch.setattr(user_model, "build_estimator", lambda p, task="x": LogisticRegression())
    with pytest.raises(ModelError, match="returned LogisticRegression for a regression target"):
        build_pipeline(schema, fast_params("ridge"))


def test_logistic_regression_on_a_regression_target_is_refused_naming_ridge(
    dataset: tuple,
) -> None:
    _, _, schema = dataset
    with pytest.raises(ModelError, match=r"train\.model: 'logistic_regression' is a classifier"):
        build_pipeline(schema, fast_params("logistic_regression"))
    with pytest.raises(ModelError, match=r"use ridge \(train\.ridge\.alpha\)"):
        build_pipeline(schema, fast_params("logistic_regression"))


def test_ridge_on_a_classification_target_is_refused_naming_logistic_regression() -> None:
    frame = load_builtin("breast_cancer")
    schema = infer_schema(frame, DataParams(source="sklearn:breast_cancer"))
    with pytest.raises(ModelError, match=r"'ridge' is a regressor.*use logistic_regression"):
        build_pipeline(schema, fast_params("ridge"))


def test_train_ridge_alpha_reaches_the_regressor(dataset: tuple) -> None:
    _, _, schema = dataset
    params = TrainParams.model_validate({"model": "ridge", "ridge": {"alpha": 7.5}})
    assert build_pipeline(schema, params).named_steps["model"].alpha == 7.5
    with pytest.raises(ValueError, match="alpha"):
        TrainParams.model_validate({"model": "ridge", "ridge": {"alpha": 0}})


def test_value_parity_scored_in_chunks_gives_the_whole_frames_figures(
    dataset: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlops_template.train as t

    train, test, schema = dataset
    pipeline = fit_pipeline(train, schema, fast_params("hist_gradient_boosting"))
    onnx_model = to_onnx(pipeline, schema)
    whole = check_value_parity(pipeline, onnx_model, test, schema, 1e-9)
    monkeypatch.setattr(t, "SCORE_CHUNK_ROWS", 7)
    assert check_value_parity(pipeline, onnx_model, test, schema, 1e-9) == whole
    assert whole.rows == len(test) and whole.max_abs_difference > 0
