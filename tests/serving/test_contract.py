"""The request contract generated from a schema: pure functions, no server, no model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset

from mlops_template.config import ServeParams
from mlops_template.features import feature_frame, onnx_inputs
from mlops_template.serve import (
    RequestError,
    build_contract,
    model_inputs,
    parse_columns,
    parse_records,
    unknown_categories,
)

SCHEMA: dict[str, Any] = {
    "classes": ["a", "b"],
    "features": [
        {"name": "age", "kind": "numeric", "nullable": False, "mean": 40.0},
        {"name": "income", "kind": "numeric", "nullable": True, "mean": 1.0},
        {"name": "mean radius", "kind": "numeric", "nullable": False, "mean": 1.0},
        {"name": "plan", "kind": "categorical", "nullable": False, "levels": ["basic", "pro"]},
        {"name": "region", "kind": "categorical", "nullable": True, "levels": ["n", "s"]},
    ],
}
ROW = {"age": 30, "income": 1.5, "mean radius": 2.0, "plan": "pro", "region": "n"}


def contract(**params: Any) -> Any:
    return build_contract(SCHEMA, ServeParams(**params))


def refused(parse: Any, c: Any, body: Any) -> RequestError:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(RequestError) as caught:
        parse(c, raw)
    return caught.value


def test_valid_records_become_columns_in_schema_order() -> None:
    batch = parse_records(contract(), json.dumps([ROW, {**ROW, "income": None}]).encode())
    assert batch.rows == 2
    assert list(batch.columns) == ["age", "income", "mean radius", "plan", "region"]
    assert batch.columns["income"] == [1.5, None]
    assert batch.columns["age"] == [30.0, 30.0]


@pytest.mark.parametrize(
    ("row", "field", "kind"),
    [
        ({k: v for k, v in ROW.items() if k != "age"}, "age", "missing"),
        ({**ROW, "colour": "red"}, "colour", "extra_forbidden"),
        ({**ROW, "age": "30"}, "age", "float_type"),
        ({**ROW, "age": True}, "age", "float_type"),
        ({**ROW, "mean radius": 1e39}, "mean radius", "less_than_equal"),
        ({**ROW, "plan": 3}, "plan", "string_type"),
        ({**ROW, "plan": ""}, "plan", "string_too_short"),
    ],
)
def test_bad_field_is_named(row: dict[str, Any], field: str, kind: str) -> None:
    error = refused(parse_records, contract(), [ROW, row])
    assert error.status == 422
    assert [d["type"] for d in error.detail] == [kind]
    assert error.detail[0]["loc"] == ["body", 1, field]
    assert f"body[1].{field}" in error.message


def _strict(body: bytes) -> Any:
    """Parse as RFC 8259 JSON: a bare NaN/Infinity fails."""

    def refuse(token: str) -> None:
        raise ValueError(f"not JSON: {token}")

    return json.loads(body, parse_constant=refuse)


NON_FINITE = {b"NaN": "NaN", b"Infinity": "Infinity", b"-Infinity": "-Infinity",
              b"1e400": "Infinity", b"-1e400": "-Infinity"}  # fmt: skip


@pytest.mark.parametrize("token", NON_FINITE, ids=[t.decode() for t in NON_FINITE])
@pytest.mark.parametrize("field", ["age", "mean radius", "plan"])
def test_non_finite_numbers_refused_naming_the_field(token: bytes, field: str) -> None:
    """Python's json writes NaN/Infinity and 1e400 overflows to an infinity: each is a
    422 naming the row and field, and the error body stays strict JSON."""
    rows = [ROW, {**ROW, field: "__X__"}]
    body = json.dumps(rows).encode().replace(b'"__X__"', token)
    error = refused(parse_records, contract(), body)
    assert error.status == 422
    assert [d["loc"] for d in error.detail] == [["body", 1, field]]
    parsed = _strict(error.body())
    assert f"body[1].{field}" in parsed["message"]
    assert parsed["detail"][0]["input"] == NON_FINITE[token]
    if field != "plan":
        assert "null for a missing value" in parsed["detail"][0]["msg"]
    columns = json.dumps({k: [v, "__X__" if k == field else v] for k, v in ROW.items()})
    error = refused(parse_columns, contract(), columns.encode().replace(b'"__X__"', token))
    assert [d["loc"] for d in error.detail] == [["body", field, 1]]
    assert _strict(error.body())["detail"][0]["input"] == NON_FINITE[token]


@pytest.mark.parametrize("field", list(ROW))
def test_null_is_accepted_in_every_feature(field: str) -> None:
    """Nullable or not in the schema (which records the training data), every feature
    takes null: the pipeline imputes every column."""
    batch = parse_records(contract(), json.dumps([ROW, {**ROW, field: None}]).encode())
    assert batch.columns[field] == [ROW[field], None]
    columns = {k: [v, None if k == field else v] for k, v in ROW.items()}
    assert parse_columns(contract(), json.dumps(columns).encode()).columns[field][1] is None
    all_null = parse_records(contract(), json.dumps([dict.fromkeys(ROW)]).encode())
    assert all(values == [None] for values in all_null.columns.values())


def test_row_limit_is_413_and_empty_is_422() -> None:
    c = contract(max_rows=3)
    assert refused(parse_records, c, [ROW] * 4).status == 413
    assert "serve.max_rows" in refused(parse_records, c, [ROW] * 4).message
    assert parse_records(c, json.dumps([ROW] * 3).encode()).rows == 3
    assert refused(parse_records, c, []).status == 422
    columns = {k: [v] * 4 for k, v in ROW.items()}
    assert refused(parse_columns, c, columns).status == 413


@pytest.mark.parametrize(
    ("body", "kind"),
    [(b"not json", "json_invalid"), (b"", "json_invalid"), (b'{"age": 1}', "list_type")],
)
def test_bad_shapes(body: bytes, kind: str) -> None:
    error = refused(parse_records, contract(), body)
    assert (error.status, error.detail[0]["type"]) == (422, kind)


def test_columns_must_have_equal_lengths() -> None:
    columns = {k: [v, v] for k, v in ROW.items()}
    columns["plan"] = ["pro"]
    error = refused(parse_columns, contract(), columns)
    assert error.status == 422
    assert error.detail[0]["loc"] == ["body", "plan"]
    parsed = parse_columns(contract(), json.dumps({k: [v, v] for k, v in ROW.items()}).encode())
    assert parsed.rows == 2


def test_unknown_categories_accepted_and_listed_by_default() -> None:
    c = contract()
    batch = parse_records(c, json.dumps([ROW, {**ROW, "plan": "enterprise"}]).encode())
    assert unknown_categories(c, batch) == [{"row": 1, "field": "plan", "value": "enterprise"}]


def test_unknown_categories_rejected_when_configured() -> None:
    error = refused(parse_records, contract(unknown_categories="reject"), [{**ROW, "plan": "x"}])
    assert error.status == 422
    assert error.detail[0]["loc"] == ["body", 0, "plan"]
    assert "'basic'" in error.detail[0]["msg"] and "'pro'" in error.detail[0]["msg"]


def test_openapi_schema_matches_the_contract() -> None:
    schema = contract(max_rows=7).records_json_schema()
    assert schema["type"] == "array" and (schema["minItems"], schema["maxItems"]) == (1, 7)
    assert "$ref" not in json.dumps(schema)  # embedded in OpenAPI: must be self-contained
    record = schema["items"]
    assert record["additionalProperties"] is False
    assert sorted(record["required"]) == sorted(ROW)
    for name in ROW:  # null in every feature
        assert {"type": "null"} in record["properties"][name]["anyOf"], name
    columns = contract(max_rows=7).columns_json_schema()
    assert "$ref" not in json.dumps(columns)
    assert columns["properties"]["age"]["maxItems"] == 7


def test_model_inputs_follow_the_training_conventions() -> None:
    """The request path builds ONNX feeds without pandas: they must equal what
    features.onnx_inputs gives for the same rows (NaN, '' for missing, float32)."""
    from mlops_template.config import DataParams
    from mlops_template.validate import infer_schema

    frame = mixed_dataset(rows=200, seed=3)
    schema = infer_schema(frame, DataParams(target="label", id_columns=["customer_id"]))
    c = build_contract(schema, ServeParams())
    names = [f["name"] for f in schema["features"]]
    body = frame[names].to_json(orient="records").encode()
    # a row of nulls too: NaN for numeric, MISSING_CATEGORY for categorical features
    body = body[:-1] + b"," + json.dumps(dict.fromkeys(names)).encode() + b"]"
    frame = pd.concat([frame, pd.DataFrame([dict.fromkeys(frame.columns)])], ignore_index=True)
    ours = model_inputs(c, parse_records(c, body))
    reference = list(onnx_inputs(feature_frame(frame, schema), schema).values())
    assert len(ours) == len(reference)
    for got, want in zip(ours, reference, strict=True):
        assert got.dtype == want.dtype and got.shape == want.shape
        if got.dtype == object:
            assert got.tolist() == want.tolist()
        else:
            np.testing.assert_array_equal(got, want)
