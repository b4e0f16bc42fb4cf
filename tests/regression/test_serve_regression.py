"""Serving a regression model: /predict returns one value per row, equal to the native
(sklearn) model's predictions, on a real uvicorn server (the image's CMD); the values
reach the prediction log, whose drift check sees them; the OpenAPI document describes
the values answer, and schemathesis holds the server to it."""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from schemathesis import GenerationMode
from tests.conftest import mixed_regression_dataset
from tests.helpers import FIXTURE_PARAMS
from tests.serving.conftest import Server, records, start_server, stop_server
from tests.serving.test_fuzz import EXAMPLES, fuzz

from mlops_template import predlog
from mlops_template import train as t
from mlops_template.commands.monitor import _logged_predictions, _model_predictions
from mlops_template.config import DataParams, MonitorParams, SplitParams, TrainParams
from mlops_template.data import load_builtin, stratified_split
from mlops_template.features import feature_frame
from mlops_template.monitor import PREDICTED_VALUE, check_drift
from mlops_template.serve import REQUEST_ID_HEADER
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
    yield server, {**model, "root": root}
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
    from mlops_template.smoke import example_row, smoke_test

    server, model = served
    result = smoke_test(server.url, expect_version="dev")
    row = pd.DataFrame([example_row(model["schema"])])
    [native] = model["pipeline"].predict(feature_frame(row, model["schema"]))
    assert float(result.prediction) == pytest.approx(native, rel=1e-3, abs=1e-3)


def logged_rows(root: Path, request_id: str) -> pd.DataFrame:
    """The log's rows of one request, once the server's writer thread has stored them."""
    path = root / "logs/predictions.sqlite"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.is_file():
            try:
                frame = predlog.read_log(path)
            except predlog.LogFormatError:  # the writer created the file, not its tables yet
                time.sleep(0.1)
                continue
            rows = frame[frame[predlog.REQUEST_ID] == request_id]
            if len(rows):
                return rows.reset_index(drop=True)
        time.sleep(0.1)
    raise AssertionError(f"request {request_id} not in {path} after 20 s")


def serve_and_read_back(server: Server, model: dict, frame: pd.DataFrame, request_id: str):
    answer = httpx.post(
        f"{server.url}/predict",
        json=records(frame, model["schema"]),
        headers={REQUEST_ID_HEADER: request_id},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["predictions"], logged_rows(model["root"], request_id)


def test_served_values_are_in_the_prediction_log(served: tuple[Server, dict]) -> None:
    server, model = served
    values, rows = serve_and_read_back(server, model, model["test"], f"values-{uuid.uuid4().hex}")
    # the numbers as served (JSON round trip), not labels: no class columns at all
    assert rows[predlog.PREDICTION].tolist() == values
    assert predlog.logged_classes(rows) == []
    sent = pd.DataFrame(records(model["test"], model["schema"]))
    for spec in model["schema"]["features"]:  # the inputs as sent, row by row
        name = spec["name"]
        if spec["kind"] == "numeric":
            np.testing.assert_array_equal(rows[name].astype(float), sent[name].astype(float))
        else:
            assert rows[name].tolist() == sent[name].tolist()
    predictions, note = _logged_predictions(rows, model["schema"])
    assert note is None and predictions[PREDICTED_VALUE].tolist() == values
    assert "not written to the prediction log" not in server.output()


def test_the_drift_check_on_logged_values(served: tuple[Server, dict]) -> None:
    """Served rows like the test split: no prediction drift; the same rows shifted: the
    logged values drift (the check reads them from the log, as `monitor check` does)."""
    server, model = served
    schema, test = model["schema"], model["test"]
    params = MonitorParams(min_rows=50)
    reference = _model_predictions(model["root"] / "models/model.onnx", test, schema)
    numeric = [f["name"] for f in schema["features"] if f["kind"] == "numeric"]
    shifted = test.assign(**{n: test[n] + 2 * test[n].std() for n in numeric})
    reports = {}
    for name, frame in (("same", test), ("shifted", shifted)):
        _, rows = serve_and_read_back(server, model, frame, f"{name}-{uuid.uuid4().hex}")
        current, note = _logged_predictions(rows, schema)
        assert note is None
        reports[name] = check_drift(test, rows, schema, params, reference, current)
    [same] = reports["same"].predictions
    [moved] = reports["shifted"].predictions
    assert same.name == moved.name == PREDICTED_VALUE
    assert not same.drifted and moved.drifted


def test_the_openapi_document_describes_the_values_answer(served: tuple[Server, dict]) -> None:
    server, _ = served
    document = httpx.get(f"{server.url}/openapi.json", timeout=30).json()
    for path in ("/predict", "/predict/columns"):
        ok = document["paths"][path]["post"]["responses"]["200"]
        assert ok["content"]["application/json"]["schema"]["$ref"].endswith("/ValuesResponse")
    answer = document["components"]["schemas"]["ValuesResponse"]
    assert answer["properties"]["predictions"]["items"]["type"] == "number"
    assert "classes" not in answer["properties"] and "probabilities" not in answer["properties"]


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_fuzz_regression_model(served: tuple[Server, dict], mode: GenerationMode) -> None:
    """schemathesis against the regression server: no 5xx, and every answer matches the
    document (a classification response model here would fail the positive mode)."""
    statuses = fuzz(served[0], mode)
    assert statuses.total() >= EXAMPLES
    assert statuses[200 if mode is GenerationMode.POSITIVE else 422] > 0
