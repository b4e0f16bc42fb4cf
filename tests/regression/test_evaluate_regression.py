"""Regression metrics (checked against scikit-learn), plots, importance and baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm
from tests.conftest import mixed_regression_dataset

from mlops_template.baseline import baseline_metrics
from mlops_template.config import DataParams, SplitParams, TrainParams
from mlops_template.data import stratified_split
from mlops_template.evaluate import (
    HIGHER_IS_BETTER,
    compute_regression_metrics,
    evaluate_regression,
    mape_note,
    residual_points,
)
from mlops_template.features import feature_frame
from mlops_template.train import fit_pipeline, to_onnx
from mlops_template.validate import infer_schema


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearns(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, size=200)
    pred = y + rng.normal(0, 1 + seed, size=200)
    got = compute_regression_metrics(y, pred)
    assert got["rmse"] == pytest.approx(math.sqrt(skm.mean_squared_error(y, pred)))
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred))
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred))
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(y, pred))


def test_mape_is_omitted_with_a_note_when_a_true_value_is_zero() -> None:
    y = np.array([0.0, 1.0, 2.0, 3.0])
    got = compute_regression_metrics(y, y + 0.5)
    assert "mape" not in got and got["mae"] == pytest.approx(0.5)
    assert mape_note(y) == "mape omitted: 1 test row(s) have a true value of 0 (division by zero)"
    assert mape_note(y + 1) is None


def test_constant_target_has_no_r2() -> None:
    got = compute_regression_metrics(np.ones(5), np.arange(5.0))
    assert math.isnan(got["r2"]) and got["rmse"] > 0


def test_directions() -> None:
    assert [HIGHER_IS_BETTER[m] for m in ("rmse", "mae", "r2", "mape")] == [
        False,
        False,
        True,
        False,
    ]


def test_residual_points_are_predicted_minus_actual() -> None:
    points = residual_points(np.array([1.0, 2.0]), np.array([1.5, 1.0]))
    assert points == [
        {"actual": 1.0, "predicted": 1.5, "residual": 0.5},
        {"actual": 2.0, "predicted": 1.0, "residual": -1.0},
    ]


@pytest.fixture(scope="module")
def fitted() -> tuple:
    frame = mixed_regression_dataset(rows=500, seed=4)
    data = DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"])
    schema = infer_schema(frame, data)
    train, test = stratified_split(frame, "label", SplitParams(), "regression")
    params = TrainParams.model_validate(
        {"model": "hist_gradient_boosting", "hist_gradient_boosting": {"max_iter": 60}}
    )
    pipeline = fit_pipeline(train, schema, params)
    return train, test, schema, pipeline, to_onnx(pipeline, schema)


def test_evaluate_scores_the_onnx_model_and_ranks_the_signal_first(fitted: tuple) -> None:
    _, test, schema, pipeline, onnx_model = fitted
    result = evaluate_regression(onnx_model, test, schema, importance_repeats=3, seed=0)
    expected = compute_regression_metrics(
        test["label"], pipeline.predict(feature_frame(test, schema))
    )
    for name, value in expected.items():
        assert result["metrics"][name] == pytest.approx(value, rel=1e-5)
    assert result["metrics"]["r2"] > 0.5
    assert len(result["residuals"]) == len(test) and result["notes"] == []
    ranked = [row["feature"] for row in result["importance"]]
    assert ranked[0] == "x1" and set(ranked[-1:]) <= {"size", "customer_id"}


def test_baselines_mean_and_ridge_on_the_same_rows(fitted: tuple) -> None:
    train, test, schema, _, _ = fitted
    result = baseline_metrics(train, test, schema, seed=0)
    assert set(result["models"]) == {"mean", "linear"}
    mean, linear = result["models"]["mean"], result["models"]["linear"]
    assert abs(mean["r2"]) < 0.05  # the training mean explains nothing on new rows
    assert linear["r2"] > 0.5 and linear["rmse"] < mean["rmse"]
    assert result["test_rows"] == len(test)
