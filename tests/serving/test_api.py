"""The API against real uvicorn servers on 127.0.0.1: parity with in-process sklearn,
every kind of bad request, metadata, limits."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.helpers import run
from tests.serving.conftest import MixedModel, Server, records

from mlops_template.config import load_params
from mlops_template.features import feature_frame
from mlops_template.files import read_json
from mlops_template.train import load_skops

pytestmark = [
    pytest.mark.slow,
    # starlette's TestClient (in-process checks at the end) warns about its httpx backend.
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]


def predict(server: Server, body: Any, path: str = "/predict") -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, timeout=30)


def as_columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {name: [row[name] for row in rows] for name in rows[0]}


def assert_parity(
    answer: dict[str, Any], pipeline: Any, features: pd.DataFrame, tol: float
) -> None:
    """Labels equal sklearn's; probabilities within the pipeline's ONNX tolerance."""
    want_labels = np.asarray(pipeline.predict(features)).astype(str)
    want_proba = pipeline.predict_proba(features)
    assert answer["classes"] == [str(c) for c in pipeline.classes_]
    assert answer["predictions"] == want_labels.tolist()
    got = np.asarray(answer["probabilities"])
    assert got.shape == want_proba.shape
    assert np.max(np.abs(got - want_proba)) <= tol
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)


@pytest.fixture(scope="module")
def test_set(built_project: Path) -> tuple[dict[str, Any], pd.DataFrame, Any]:
    schema = read_json(built_project / "data/schema.json")
    frame = pd.read_parquet(built_project / "data/split/test.parquet")
    return schema, frame, load_skops(built_project / "models/model.skops")


@pytest.fixture(scope="module")
def one_row(test_set: tuple[dict[str, Any], pd.DataFrame, Any]) -> dict[str, Any]:
    schema, frame, _ = test_set
    return records(frame.iloc[:1], schema)[0]


def test_parity_with_sklearn_on_the_test_set(served: Server, built_project: Path, test_set) -> None:
    schema, frame, pipeline = test_set
    tolerance = load_params(built_project / "params.yaml").train.onnx_probability_tolerance
    rows = records(frame, schema)
    features = feature_frame(frame, schema)
    answer = predict(served, rows)
    assert answer.status_code == 200, answer.text
    assert_parity(answer.json(), pipeline, features, tolerance)
    assert answer.json()["model_version"] == "dev"
    # The columnar payload gives the same answer.
    columns = predict(served, as_columns(rows), "/predict/columns")
    assert columns.status_code == 200, columns.text
    assert columns.json()["predictions"] == answer.json()["predictions"]
    assert columns.json()["probabilities"] == answer.json()["probabilities"]
    # One row at a time too (no batch effects).
    for i in (0, len(rows) // 2, len(rows) - 1):
        single = predict(served, [rows[i]]).json()
        assert single["predictions"] == [answer.json()["predictions"][i]]


def test_health_and_metadata(served: Server, built_project: Path) -> None:
    health = httpx.get(f"{served.url}/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "model_version": "dev"}
    meta = httpx.get(f"{served.url}/metadata").json()
    assert meta["model_version"] == "dev"
    assert meta["git_commit"] == run(["git", "rev-parse", "HEAD"], built_project).stdout.strip()
    assert meta["metrics"] == read_json(built_project / "eval/metrics.json")
    assert meta["schema"] == read_json(built_project / "data/schema.json")
    info = read_json(built_project / "models/train_info.json")
    assert meta["model_sha256"] == info["sha256"]["model.onnx"]
    assert meta["train"]["model"] == info["model"]
    assert meta["limits"]["max_rows"] == load_params(built_project / "params.yaml").serve.max_rows


def test_request_id_is_echoed(served: Server, one_row: dict[str, Any]) -> None:
    answer = httpx.post(f"{served.url}/predict", json=[one_row], headers={"X-Request-ID": "abc-1"})
    assert answer.json()["request_id"] == "abc-1" == answer.headers["x-request-id"]
    generated = predict(served, [one_row]).json()["request_id"]
    assert len(generated) == 32 and generated != predict(served, [one_row]).json()["request_id"]


def _without(row: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != name}


BAD_RECORDS = {
    "missing field": (lambda r: [_without(r, "mean_radius")], "mean_radius", "missing"),
    "extra field": (lambda r: [{**r, "colour": "red"}], "colour", "extra_forbidden"),
    "string for a number": (lambda r: [{**r, "mean_area": "12.5"}], "mean_area", "float_type"),
    "boolean for a number": (lambda r: [{**r, "mean_area": True}], "mean_area", "float_type"),
    "beyond float32": (lambda r: [{**r, "mean_area": 1e300}], "mean_area", "less_than_equal"),
    "second row bad": (lambda r: [r, {**r, "worst_area": []}], "worst_area", "float_type"),
}


@pytest.mark.parametrize("case", BAD_RECORDS, ids=list(BAD_RECORDS))
def test_bad_record_is_422_naming_the_field(served: Server, one_row, case: str) -> None:
    make, field, kind = BAD_RECORDS[case]
    body = make(one_row)
    answer = predict(served, body)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert [d["type"] for d in detail] == [kind]
    assert detail[0]["loc"] == ["body", len(body) - 1, field]
    assert field in answer.json()["message"]
    # The same mistake in the columnar payload names the same field.
    columns = predict(served, as_columns([body[-1]]), "/predict/columns")
    assert columns.status_code == 422, columns.text
    assert [d["loc"][:2] for d in columns.json()["detail"]] == [["body", field]]


def test_bad_shapes(served: Server, one_row: dict[str, Any], built_project: Path) -> None:
    max_rows = load_params(built_project / "params.yaml").serve.max_rows
    too_many = predict(served, [one_row] * (max_rows + 1))
    assert too_many.status_code == 413
    assert f"at most {max_rows}" in too_many.json()["message"]
    assert predict(served, [one_row] * max_rows).status_code == 200
    empty = predict(served, [])
    assert empty.status_code == 422 and empty.json()["detail"][0]["type"] == "too_short"
    not_json = httpx.post(f"{served.url}/predict", content=b"{oops", timeout=10)
    assert not_json.status_code == 422 and not_json.json()["detail"][0]["type"] == "json_invalid"
    no_body = httpx.post(f"{served.url}/predict", timeout=10)
    assert no_body.status_code == 422
    an_object = predict(served, one_row)
    assert an_object.status_code == 422 and an_object.json()["detail"][0]["type"] == "list_type"
    not_rows = predict(served, [1])
    assert not_rows.status_code == 422 and not_rows.json()["detail"][0]["loc"] == ["body", 0]
    columns = as_columns([one_row, one_row])
    columns["mean_area"] = columns["mean_area"][:1]
    uneven = predict(served, columns, "/predict/columns")
    assert uneven.status_code == 422 and uneven.json()["detail"][0]["loc"] == ["body", "mean_area"]
    too_long = predict(served, as_columns([one_row] * (max_rows + 1)), "/predict/columns")
    assert too_long.status_code == 413


def test_declared_body_over_the_limit_is_413_before_reading(served: Server) -> None:
    """A client announcing a huge body is refused from the headers alone."""
    url = urlparse(served.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 999999999\r\n\r\n["
        )
        answer = b""
        while b"serve.max_body_mb" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b"serve.max_body_mb" in answer


def test_mixed_parity_with_nulls_and_categories(
    mixed_accept: Server, mixed_model: MixedModel
) -> None:
    rows = records(mixed_model.test, mixed_model.schema)
    assert any(r["color"] is None for r in rows) and any(r["x2"] is None for r in rows)
    answer = predict(mixed_accept, rows)
    assert answer.status_code == 200, answer.text
    features = feature_frame(mixed_model.test, mixed_model.schema)
    assert_parity(answer.json(), mixed_model.pipeline, features, mixed_model.tolerance)
    assert answer.json()["unknown_categories"] == []
    assert answer.json()["model_version"] == "v1.2.3"
    meta = httpx.get(f"{mixed_accept.url}/metadata").json()
    assert (meta["model_version"], meta["git_commit"]) == ("v1.2.3", "0123abcd")


def test_unknown_category_accepted_and_reported(
    mixed_accept: Server, mixed_model: MixedModel
) -> None:
    row = records(mixed_model.test.iloc[:1], mixed_model.schema)[0]
    answer = predict(mixed_accept, [row, {**row, "color": "purple"}])
    assert answer.status_code == 200, answer.text
    assert answer.json()["unknown_categories"] == [{"row": 1, "field": "color", "value": "purple"}]
    # Scored like the model scores an unseen value: as sklearn does (the tree model's
    # ordinal encoder: features.UNKNOWN_CATEGORY_CODE).
    frame = pd.DataFrame([row, {**row, "color": "purple"}])
    features = feature_frame(frame, mixed_model.schema)
    assert_parity(answer.json(), mixed_model.pipeline, features, mixed_model.tolerance)


def test_unknown_category_rejected_when_configured(
    mixed_reject: Server, mixed_model: MixedModel
) -> None:
    row = records(mixed_model.test.iloc[:1], mixed_model.schema)[0]
    answer = predict(mixed_reject, [{**row, "size": "XXL"}])
    assert answer.status_code == 422
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["body", 0, "size"]
    for level in ("S", "M", "L", "XL"):
        assert f"'{level}'" in detail["msg"]
    assert predict(mixed_reject, [row]).status_code == 200


def test_streamed_body_over_the_limit_is_413(mixed_reject: Server, mixed_model: MixedModel) -> None:
    """Chunked uploads (no Content-Length) are cut off at serve.max_body_mb too."""

    def chunks():
        yield b"["
        for _ in range(400):
            yield json.dumps({"x1": 1.0} | {"pad": "x" * 1000}).encode() + b","
        yield b"{}]"

    answer = httpx.post(f"{mixed_reject.url}/predict", content=chunks(), timeout=30)
    assert answer.status_code == 413
    assert "serve.max_body_mb" in answer.json()["message"]


class RecordingLog:
    """A prediction log that records what the app hands it (and can be made to fail)."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[Any] = []
        self.closed = False
        self.fail = fail

    def record(self, batch: Any) -> None:
        self.batches.append(batch)
        if self.fail:
            raise OSError("disk full")

    def close(self) -> None:
        self.closed = True


def in_process_app(mixed_model: MixedModel, log: RecordingLog | None = None) -> Any:
    from mlops_template.serve import create_app, settings_from_env

    settings = settings_from_env(mixed_model.root)
    return create_app(settings, mixed_model.schema, prediction_log=log)


def wait_ready(client: Any) -> None:
    for _ in range(400):
        if client.get("/health").status_code == 200:
            return
        threading.Event().wait(0.025)
    raise AssertionError(client.get("/health").text)


def test_fastapi_routes_answer_like_the_fast_path(mixed_model: MixedModel) -> None:
    """The served app short-cuts POST /predict*; the FastAPI routes behind it (what the
    OpenAPI document describes) must give the same answers."""
    from starlette.testclient import TestClient

    app = in_process_app(mixed_model)
    rows = records(mixed_model.test, mixed_model.schema)
    bad = [{**rows[0], "x1": "oops"}]
    with TestClient(app) as fast, TestClient(app.fastapi) as routed:
        wait_ready(fast)
        for path, body in (
            ("/predict", rows),
            ("/predict/columns", as_columns(rows)),
            ("/predict", bad),
        ):
            a = fast.post(path, json=body, headers={"x-request-id": "r1"})
            b = routed.post(path, json=body, headers={"x-request-id": "r1"})
            assert (a.status_code, a.json()) == (b.status_code, b.json())
            assert a.headers["content-type"] == b.headers["content-type"] == "application/json"


def test_prediction_log_receives_each_request_and_never_breaks_serving(
    mixed_model: MixedModel,
) -> None:
    from starlette.testclient import TestClient

    rows = records(mixed_model.test.iloc[:3], mixed_model.schema)
    log = RecordingLog()
    with TestClient(in_process_app(mixed_model, log)) as client:
        wait_ready(client)
        answer = client.post("/predict", json=rows, headers={"x-request-id": "req-7"}).json()
        assert client.post("/predict", json=[{}]).status_code == 422  # not logged
    assert log.closed
    assert len(log.batches) == 1
    batch = log.batches[0]
    assert (batch.request_id, batch.model_version) == ("req-7", "dev")
    assert batch.predictions == answer["predictions"]
    assert batch.probabilities.tolist() == answer["probabilities"]
    assert list(batch.features) == [f["name"] for f in mixed_model.schema["features"]]
    assert batch.features["color"] == [r["color"] for r in rows]

    failing = RecordingLog(fail=True)
    with TestClient(in_process_app(mixed_model, failing)) as client:
        wait_ready(client)
        assert client.post("/predict", json=rows).status_code == 200
    assert len(failing.batches) == 1
