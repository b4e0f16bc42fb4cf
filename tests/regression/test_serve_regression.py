"""Serving a regression model: /predict returns one value per row, equal to the native
(sklearn) model's predictions, on a real uvicorn server (the image's CMD)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.conftest import mixed_regression_dataset
from tests.helpers import FIXTURE_PARAMS
from tests.serving.conftest import Server, records, start_server, stop_server

from mlops_template import train as t
from mlops_template.config import DataParams, SplitParams, TrainParams
from mlops_template.data import load_builtin, stratified_split
from mlops_template.features import feature_frame
from mlops_template.validate import infer_schema


def build(root: Path, frame, data: DataParams, params: TrainParams) -> dict:
    schema = infer_schema(frame, data)
    train, test = stratified_split(frame, data.target, SplitParams(), "regression")
    pipeline = t.fit_pipeline(train, schema, params)
    onnx_model = t.to_onnx(pipeline, schema)
    parity = t.check_value_parity(pipeline, onnx_model, test, schema, params.onnx_value_tolerance)
    assert parity.passed, parity
    for sub in ("models", "data", "eval"):
        (root / sub).mkdir(parents=True)
    (root / "models/model.onnx").write_bytes(onnx_model)
    info = t.train_info(params, parity, t.skops_bytes(pipeline), onnx_model, len(train))
    (root / "models/train_info.json").write_text(json.dumps(info))
    (root / "data/schema.json").write_text(json.dumps(schema))
    (root / "eval/metrics.json").write_text(json.dumps({"rmse": 1.0}))
    shutil.copyfile(FIXTURE_PARAMS, root / "params.yaml")
    return {"schema": schema, "pipeline": pipeline, "test": test}


@pytest.fixture(scope="module", params=["diabetes", "mixed"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Server, dict]]:
    root = tmp_path_factory.mktemp(request.param) / "project"
    if request.param == "diabetes":
        model = build(
            root,
            load_builtin("diabetes"),
            DataParams(source="sklearn:diabetes"),
            TrainParams(model="random_forest"),
        )
    else:
        model = build(
            root,
            mixed_regression_dataset(rows=500, seed=6),
            DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"]),
            TrainParams(model="hist_gradient_boosting"),
        )
    server = start_server(root, root.parent / "server.log", cli=False)
    yield server, model
    stop_server(server)


def test_predict_returns_values_with_parity_to_the_native_model(
    served: tuple[Server, dict],
) -> None:
    server, model = served
    test, schema = model["test"], model["schema"]
    answer = httpx.post(f"{server.url}/predict", json=records(test, schema), timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "classes" not in body and "probabilities" not in body
    values = np.asarray(body["predictions"], dtype=np.float64)
    native = model["pipeline"].predict(feature_frame(test, schema))
    assert values.shape == native.shape
    np.testing.assert_allclose(values, native, rtol=1e-3, atol=1e-3)
    assert len(set(np.round(values, 3))) > 10  # a real regressor, not a constant


def test_columns_endpoint_and_nulls(served: tuple[Server, dict]) -> None:
    server, model = served
    schema = model["schema"]
    rows = records(model["test"].head(3), schema)
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    columns[next(iter(columns))][1] = None  # a missing value is imputed
    answer = httpx.post(f"{server.url}/predict/columns", json=columns, timeout=30)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 3
    assert all(np.isfinite(answer.json()["predictions"]))


def test_bad_request_names_the_field(served: tuple[Server, dict]) -> None:
    server, model = served
    row = records(model["test"].head(1), model["schema"])[0]
    name = next(f["name"] for f in model["schema"]["features"] if f["kind"] == "numeric")
    row[name] = "a lot"
    answer = httpx.post(f"{server.url}/predict", json=[row], timeout=30)
    assert answer.status_code == 422 and name in answer.text


def test_metadata_shows_the_regression_schema(served: tuple[Server, dict]) -> None:
    server, _ = served
    meta = httpx.get(f"{server.url}/metadata", timeout=30).json()
    assert meta["schema"]["task"] == "regression"
    assert meta["train"]["parity"]["mismatches"] == 0


def test_the_deploy_smoke_test_accepts_a_regression_answer(served: tuple[Server, dict]) -> None:
    import pandas as pd

    from mlops_template.smoke import example_row, smoke_test

    server, model = served
    result = smoke_test(server.url, expect_version="dev")
    row = pd.DataFrame([example_row(model["schema"])])
    [native] = model["pipeline"].predict(feature_frame(row, model["schema"]))
    assert float(result.prediction) == pytest.approx(native, rel=1e-3, abs=1e-3)
