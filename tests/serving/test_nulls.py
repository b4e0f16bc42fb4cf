"""Serving accepts what the model can handle (issue 13): a null in any feature is scored
as the sklearn pipeline scores a missing value, NaN/Infinity/overflowing numbers are a
422 naming the field, and every response body is strict JSON."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.serving.conftest import MixedModel, Server, records
from tests.serving.test_api import as_columns, assert_parity, in_process_app, predict, wait_ready

from mlops_template.features import feature_frame

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`"),
]

FEATURES = ("x1", "x2", "color", "size")


def strict_json(body: bytes | str) -> Any:
    """RFC 8259 JSON only: a bare NaN, Infinity or -Infinity is an error."""

    def refuse(token: str) -> None:
        raise AssertionError(f"response body is not strict JSON ({token}): {body[:300]!r}")

    return json.loads(body, parse_constant=refuse)


def with_nulls(frame: pd.DataFrame, names: tuple[str, ...]) -> pd.DataFrame:
    out = frame.copy()
    for name in names:
        out[name] = None if out[name].dtype == object else np.nan
    return out


def test_the_mixed_model_has_features_with_and_without_missing_training_values(
    mixed_model: MixedModel,
) -> None:
    """What the null tests below rely on: x1 and size had no missing value in training."""
    nullable = {f["name"]: f["nullable"] for f in mixed_model.schema["features"]}
    assert nullable == {"x1": False, "x2": True, "color": True, "size": False}


@pytest.mark.parametrize(
    "names", [(name,) for name in FEATURES] + [FEATURES], ids=[*FEATURES, "all"]
)
def test_null_in_any_feature_is_scored_like_the_sklearn_pipeline(
    mixed_accept: Server, mixed_model: MixedModel, names: tuple[str, ...]
) -> None:
    frame = with_nulls(mixed_model.test.iloc[:40], names)
    rows = records(frame, mixed_model.schema)
    assert all(row[name] is None for row in rows for name in names)
    answer = predict(mixed_accept, rows)
    assert answer.status_code == 200, answer.text
    body = strict_json(answer.content)
    features = feature_frame(frame, mixed_model.schema)  # NaN / MISSING_CATEGORY
    assert_parity(body, mixed_model.pipeline, features, mixed_model.tolerance)
    columns = predict(mixed_accept, as_columns(rows), "/predict/columns")
    assert columns.status_code == 200, columns.text
    assert strict_json(columns.content)["predictions"] == body["predictions"]


def test_a_null_is_imputed_not_ignored(mixed_accept: Server, mixed_model: MixedModel) -> None:
    """A null in x1 (no missing value in training) is scored as x1 = its training median,
    the imputer's value: not as 0, nor as whatever a NaN would do in a tree."""
    imputer = mixed_model.pipeline.named_steps["preprocess"].named_transformers_["numeric"]
    median = float(imputer.named_steps["impute"].statistics_[0])
    row = records(mixed_model.test.iloc[:1], mixed_model.schema)[0]
    null = predict(mixed_accept, [{**row, "x1": None}]).json()
    at_median = predict(mixed_accept, [{**row, "x1": median}]).json()
    assert null["probabilities"] == at_median["probabilities"]
    far = predict(mixed_accept, [{**row, "x1": median + 5}]).json()
    assert far["probabilities"] != null["probabilities"]  # x1 matters: the check can fail


NON_FINITE = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity",
              "1e400": "Infinity", "-1e400": "-Infinity"}  # fmt: skip


@pytest.mark.parametrize("token", NON_FINITE)
@pytest.mark.parametrize("field", ["x1", "x2", "color"])
def test_non_finite_number_is_422_naming_the_field(
    mixed_accept: Server, mixed_model: MixedModel, token: str, field: str
) -> None:
    """`json.dumps(float('nan'))` writes NaN: a common client mistake, answered with a
    strict-JSON 422 that names row and field and echoes the value as a string."""
    rows = records(mixed_model.test.iloc[:3], mixed_model.schema)
    rows[2][field] = "__X__"
    body = json.dumps(rows).replace('"__X__"', token).encode()
    answer = httpx.post(f"{mixed_accept.url}/predict", content=body, timeout=30)
    assert answer.status_code == 422, answer.text
    parsed = strict_json(answer.content)
    assert [d["loc"] for d in parsed["detail"]] == [["body", 2, field]]
    assert parsed["detail"][0]["input"] == NON_FINITE[token]
    assert f"body[2].{field}" in parsed["message"]
    columns = json.dumps(as_columns(rows)).replace('"__X__"', token).encode()
    answer = httpx.post(f"{mixed_accept.url}/predict/columns", content=columns, timeout=30)
    assert answer.status_code == 422, answer.text
    assert [d["loc"] for d in strict_json(answer.content)["detail"]] == [["body", field, 2]]


def test_every_response_body_is_strict_json(mixed_accept: Server, mixed_model: MixedModel) -> None:
    row = records(mixed_model.test.iloc[:1], mixed_model.schema)[0]
    nan_row = json.dumps([{**row, "x1": "__X__"}]).replace('"__X__"', "NaN")
    cases: list[tuple[str, str, Any, int]] = [
        ("POST", "/predict", json.dumps([dict.fromkeys(row)]), 200),
        ("POST", "/predict", nan_row, 422),
        ("POST", "/predict", nan_row.replace('"x1"', '"nope"', 1), 422),  # extra field NaN
        ("POST", "/predict", nan_row.replace('"color"', '"colour"'), 422),  # + missing
        ("POST", "/predict", json.dumps([{**row, "x1": "1.5"}]), 422),
        ("POST", "/predict", "[NaN]", 422),
        ("POST", "/predict", "NaN", 422),
        ("POST", "/predict", "not json", 422),
        ("POST", "/predict", json.dumps([row] * 20_000), 413),
        ("POST", "/predict/columns", json.dumps({"x1": [float("nan")]}), 422),
        ("GET", "/health", None, 200),
        ("GET", "/metadata", None, 200),
        ("GET", "/openapi.json", None, 200),
        ("GET", "/predict", None, 405),
        ("GET", "/no-such-path", None, 404),
    ]
    for method, path, content, status in cases:
        answer = httpx.request(method, f"{mixed_accept.url}{path}", content=content, timeout=30)
        assert answer.status_code == status, (method, path, answer.text[:300])
        assert answer.headers["content-type"] == "application/json", (path, answer.headers)
        strict_json(answer.content)


def test_non_finite_metrics_and_model_failures_still_give_strict_json(
    mixed_model: MixedModel, tmp_path: Path
) -> None:
    """/metadata with an undefined (NaN) metric shows null; a prediction that fails in
    the runtime is a 500 with a JSON body on both the fast path and the FastAPI route."""
    from starlette.testclient import TestClient

    from mlops_template.serve import build_contract, create_app, load_model, settings_from_env

    root = tmp_path / "project"
    shutil.copytree(mixed_model.root, root)
    (root / "eval/metrics.json").write_text('{"accuracy": 0.5, "roc_auc": NaN}')
    with TestClient(in_process_app(dataclasses.replace(mixed_model, root=root))) as client:
        wait_ready(client)
        meta = client.get("/metadata")
        assert strict_json(meta.content)["metrics"] == {"accuracy": 0.5, "roc_auc": None}

    settings = settings_from_env(root)

    class Broken:
        def run(self, *_: Any) -> Any:
            raise RuntimeError("onnxruntime fell over")

    def broken_loader() -> Any:
        contract = build_contract(mixed_model.schema, settings.params)
        model = load_model(root, contract, settings.params, "dev")
        return type(model)(Broken(), model.input_names, model.sha256, model.metadata)

    app = create_app(settings, mixed_model.schema, loader=broken_loader)
    row = records(mixed_model.test.iloc[:1], mixed_model.schema)
    with TestClient(app, raise_server_exceptions=False) as fast:
        wait_ready(fast)
        answer = fast.post("/predict", json=row, headers={"x-request-id": "boom-1"})
        assert answer.status_code == 500
        body = strict_json(answer.content)
        assert body["request_id"] == "boom-1" and "internal error" in body["message"]
        assert "onnxruntime fell over" not in answer.text  # tracebacks go to the log
    with TestClient(app.fastapi, raise_server_exceptions=False) as routed:
        wait_ready(routed)
        answer = routed.post("/predict/columns", json=as_columns(row))
        assert answer.status_code == 500
        assert "internal error" in strict_json(answer.content)["message"]


def test_the_prediction_log_stores_nulls_as_missing_values(
    mixed_model: MixedModel, tmp_path: Path
) -> None:
    from starlette.testclient import TestClient

    from mlops_template.predlog import PredictionLogger, read_log

    frame = mixed_model.test.iloc[:4]
    rows = records(frame, mixed_model.schema)
    for i, name in enumerate(FEATURES):  # row i: a null in feature i
        rows[i][name] = None
    everything_null = [dict.fromkeys(FEATURES)]
    path = tmp_path / "log.sqlite"
    logger = PredictionLogger(path, classes=mixed_model.schema["classes"])
    with TestClient(in_process_app(mixed_model, logger)) as client:  # type: ignore[arg-type]
        wait_ready(client)
        assert client.post("/predict", json=rows).status_code == 200
        assert client.post("/predict/columns", json=as_columns(everything_null)).status_code == 200
    logged = read_log(path, features=list(FEATURES))
    assert len(logged) == 5
    for i, name in enumerate(FEATURES):
        assert pd.isna(logged[name].iloc[i]), (i, name)
        others = [n for n in FEATURES if n != name]
        assert logged.loc[i, others].notna().all(), (i, others)
    assert logged.iloc[4][list(FEATURES)].isna().all()


def _readme_predict_example() -> tuple[str, str]:
    from tests.helpers import TEMPLATE_ROOT

    readme = (TEMPLATE_ROOT / "README.md").read_text()
    section = re.search(r"^### A `/predict` request\n(.*?)^##", readme, flags=re.S | re.M)
    assert section, "README has no '### A `/predict` request' section"
    blocks = re.findall(r"```json\n(.*?)```", section.group(1), flags=re.S)
    assert len(blocks) == 2, "the section shows a request body and its answer"
    return blocks[0], blocks[1]


def test_the_readme_predict_example_is_what_the_api_answers(served: Server) -> None:
    """The README's request is sent as shown to the model `make run` builds; its answer
    has the fields, classes and prediction the README shows."""
    request, shown = _readme_predict_example()
    rows = strict_json(request)
    assert any(value is None for row in rows for value in row.values()), "shows a null"
    answer = httpx.post(
        f"{served.url}/predict",
        content=request.encode(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    got, want = strict_json(answer.content), strict_json(shown)
    assert list(got) == list(want)
    for key in ("model_version", "classes", "predictions", "unknown_categories"):
        assert got[key] == want[key], key
    assert np.asarray(got["probabilities"]).shape == np.asarray(want["probabilities"]).shape
    np.testing.assert_allclose(np.sum(want["probabilities"], axis=1), 1.0, atol=1e-6)
    assert len(want["request_id"]) == len(got["request_id"]) == 32
