"""The serving API: FastAPI + onnxruntime on the model that `make run` built.

The endpoints and the request contract are described in `API_DESCRIPTION` (shown at
/docs). The contract is generated from ``data/schema.json`` by `build_contract`, a pure
function; every request is validated before anything reaches the model.

The model is loaded in a background thread when the app starts, so the server answers
``/health`` (503) at once; the ONNX file's sha256 must equal the one recorded in
``models/train_info.json`` or the model is refused (``/health`` says why, and
``python -m mlops_template serve`` refuses to start). Model version and git commit come
from ``MODEL_VERSION`` and ``GIT_COMMIT`` (set by the deploy workflow / image), else
``"dev"`` and ``git rev-parse HEAD``.

Prediction log (issue 5): ``create_app(..., prediction_log=...)`` takes any object with
``record(batch: PredictionBatch) -> None`` and ``close() -> None``. ``record`` is called
once per successful prediction request, on the event loop, after the response body was
built and before it is sent: it must not block (queue the batch and write it from a
thread) and an exception it raises is logged as a warning, never returned to the client.
The batch carries the request body as received and the response body as sent (bytes),
besides the parsed columns and the predictions. ``close`` is called on shutdown. ``app_from_env`` is where one is built from the
environment (e.g. a path in an environment variable).
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, with_config
from pydantic_core import to_json
from starlette.requests import Request
from typing_extensions import TypedDict

from mlops_template import paths
from mlops_template.config import ServeParams
from mlops_template.features import (
    MISSING_CATEGORY,
    categorical_features,
    numeric_features,
)
from mlops_template.log import get_logger

logger = get_logger("serve")

FLOAT32_MAX = float(np.finfo(np.float32).max)
MAX_ERRORS_SHOWN = 20
REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_LENGTH = 128
JSON = "application/json"

API_DESCRIPTION = """\
Predictions of the model built by the template's pipeline (ONNX, onnxruntime).

**Endpoints.** `GET /health`: 200 once the model is loaded and verified, 503 while it
loads or if it failed to load (the body says why). `GET /metadata`: model version, git
commit, model sha256, metrics, training info, data schema, request limits.
`POST /predict`: a JSON list of records `[{"feature": value, ...}, ...]`.
`POST /predict/columns`: the same rows as columns `{"feature": [v1, v2, ...], ...}`,
cheaper to validate for big batches. Both answer `model_version`, `request_id`,
`classes`, `predictions` (one class per row), `probabilities` (per row, one per class, in
the order of `classes`) and `unknown_categories`. A regression model (schema task
`regression`) answers `predictions` as one number per row, without `classes` and
`probabilities`.

**Request contract** (generated from `data/schema.json`):
- every feature is required, and a field that is not a feature is refused;
- numeric features take JSON numbers only (no strings, no booleans), finite and within
  float32 range (the model computes in float32): `NaN`, `Infinity`, `-Infinity` (not
  JSON, but often sent) and numbers that overflow (`1e400`) are a 422 naming the field;
- categorical features take non-empty strings;
- `null` (a missing value) is accepted in every feature: the model imputes it (numeric:
  the training median; categorical: the most frequent training value), whether or not
  the feature had missing values in the training data (`nullable` in the schema only
  records that it had);
- a category value absent from training (`levels` in the schema): with
  `serve.unknown_categories: accept` (default) the row is scored (a linear model's
  one-hot encoder ignores the value, so the row counts as having none of the known
  values; a tree model's ordinal encoder gives it a code below every known one,
  features.UNKNOWN_CATEGORY_CODE) and the value is listed in `unknown_categories`; with `reject` it is a 422 naming the allowed
  values;
- numbers outside the training range are accepted (the drift monitor reports them);
- more than `serve.max_rows` rows: 413; a body over `serve.max_body_mb`: 413 before
  parsing; an empty list, a body that is not JSON or has the wrong shape: 422; columns of
  different lengths: 422.

Errors name each field: `{"message": "body[3].mean_radius: missing field: ...; ...",
"detail": [{"loc": ["body", 3, "mean_radius"], "msg": ..., "type": "missing"}, ...]}`.
Every response body is strict JSON (RFC 8259): an offending input that JSON cannot hold
is echoed as a string (`"input": "NaN"`), never as a bare `NaN`.
"""


class ModelError(RuntimeError):
    """The model files are missing, inconsistent or cannot be loaded."""


def strict_json(value: Any) -> bytes:
    """JSON bytes a strict parser accepts: a NaN or infinity anywhere (a metric that was
    undefined, say) becomes null instead of pydantic's default bare `NaN`."""
    return to_json(value, inf_nan_mode="null")


# --------------------------------------------------------------------------------------
# The request contract, generated from the schema (pure: no I/O)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """What a request must look like, and how to turn a valid one into model inputs."""

    schema: dict[str, Any]
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    levels: dict[str, frozenset[str]]
    max_rows: int
    unknown_categories: Literal["accept", "reject"]
    records: TypeAdapter[Any] = field(repr=False)
    columns: TypeAdapter[Any] = field(repr=False)
    record: TypeAdapter[Any] = field(repr=False)

    @property
    def features(self) -> tuple[str, ...]:
        return (*self.numeric, *self.categorical)

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.schema.get("classes", ()))

    @property
    def regression(self) -> bool:
        """A regression model: /predict answers one value per row, no classes."""
        return self.schema.get("task") == "regression"

    def records_json_schema(self) -> dict[str, Any]:
        # Inline (no "$defs"/"$ref"): the schema is embedded in the OpenAPI document,
        # where a "#/$defs/..." reference would point at the document's root.
        return {
            "type": "array",
            "items": self.record.json_schema(),
            "minItems": 1,
            "maxItems": self.max_rows,
        }

    def columns_json_schema(self) -> dict[str, Any]:
        return self.columns.json_schema()


def _value_type(spec: dict[str, Any], reject_unknown: bool) -> Any:
    """A feature's JSON value: its kind, or null (missing) for every feature. The
    pipeline has an imputer on every column (features.build_preprocessor), so a null is
    scored like a missing value in training, even in a column that had none there."""
    if spec["kind"] == "numeric":
        kind: Any = Annotated[
            float,
            Field(strict=True, allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX),
        ]
    elif reject_unknown and spec.get("levels"):
        kind = Literal[tuple(str(v) for v in spec["levels"])]
    else:
        examples = [str(v) for v in spec.get("levels", [])[:20]]
        kind = Annotated[
            str,
            Field(strict=True, min_length=1, json_schema_extra={"examples": examples}),
        ]
    return kind | None


def _typed_dict(name: str, fields: dict[str, Any], description: str) -> Any:
    # The functional form takes any column name as a key ("mean radius", "class", ...).
    cls = TypedDict(name, fields)  # type: ignore[operator]
    cls.__doc__ = description
    return with_config(ConfigDict(extra="forbid", strict=True))(cls)


def build_contract(schema: dict[str, Any], params: ServeParams) -> Contract:
    """The request models for `schema` with the limits in `params` (serve section)."""
    specs = schema["features"]
    if not specs:
        raise ModelError("data/schema.json lists no features")
    reject = params.unknown_categories == "reject"
    value_types = {spec["name"]: _value_type(spec, reject) for spec in specs}
    record = _typed_dict(
        "Record", value_types, "One row: every feature of data/schema.json, nothing else."
    )
    column_types = {
        name: Annotated[list[kind], Field(min_length=1, max_length=params.max_rows)]  # type: ignore[valid-type]
        for name, kind in value_types.items()
    }
    columns = _typed_dict(
        "Columns",
        column_types,
        "Rows as columns: one equally long list per feature of data/schema.json.",
    )
    records = TypeAdapter(Annotated[list[record], Field(min_length=1, max_length=params.max_rows)])  # type: ignore[valid-type]
    return Contract(
        schema=schema,
        numeric=tuple(numeric_features(schema)),
        categorical=tuple(categorical_features(schema)),
        levels={
            s["name"]: frozenset(str(v) for v in s.get("levels", []))
            for s in specs
            if s["kind"] == "categorical"
        },
        max_rows=params.max_rows,
        unknown_categories=params.unknown_categories,
        records=records,
        columns=TypeAdapter(columns),
        record=TypeAdapter(record),
    )


@dataclass
class RequestError(Exception):
    """A refused request: HTTP status + FastAPI-style detail list."""

    status: int
    detail: list[dict[str, Any]]

    @property
    def message(self) -> str:
        parts = [f"{_where(d['loc'])}: {d['msg']}" for d in self.detail[:MAX_ERRORS_SHOWN]]
        more = len(self.detail) - MAX_ERRORS_SHOWN
        if more > 0:
            parts.append(f"... and {more} more")
        return "; ".join(parts)

    def body(self) -> bytes:
        return strict_json({"message": self.message, "detail": self.detail[:100]})


def _where(loc: list[Any]) -> str:
    text = str(loc[0]) if loc else "body"
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _too_many_rows(got: Any, max_rows: int, loc: list[Any]) -> RequestError:
    return RequestError(
        413,
        [
            {
                "loc": loc,
                "msg": f"too many rows: {got}; at most {max_rows} per request (serve.max_rows)",
                "type": "too_many_rows",
            }
        ],
    )


_NON_FINITE_NAMES = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _validation_error(exc: ValidationError, max_rows: int) -> RequestError:
    detail = []
    for error in exc.errors(include_url=False):
        loc = ["body", *error["loc"]]
        kind = error["type"]
        if kind == "too_long" and len(error["loc"]) <= 1:
            got = (error.get("ctx") or {}).get("actual_length", "more")
            return _too_many_rows(got, max_rows, loc)
        entry: dict[str, Any] = {"loc": loc, "msg": error["msg"], "type": kind}
        if len(error["loc"]) >= 1 and kind not in ("missing", "json_invalid"):
            value = error.get("input")
            if isinstance(value, float) and not math.isfinite(value):
                # JSON has no NaN/Infinity: echo the value as a string (1e400 parses
                # as an infinity, so it is echoed as "Infinity").
                entry["input"] = _NON_FINITE_NAMES[repr(value)]
            elif isinstance(value, str | int | float | bool) or value is None:
                entry["input"] = value if not isinstance(value, str) else value[:200]
        if kind == "finite_number":
            entry["msg"] = (
                "not a finite number (NaN, Infinity, or too large, e.g. 1e400); "
                "send null for a missing value"
            )
        elif kind == "json_invalid":
            entry["msg"] = f"not valid JSON ({error['msg']})"
        elif kind == "extra_forbidden":
            entry["msg"] = "unknown field: not a feature of this model (data/schema.json)"
        elif kind == "missing":
            entry["msg"] = "missing field: every feature is required (null for a missing value)"
        detail.append(entry)
    return RequestError(422, detail)


@dataclass(frozen=True)
class Batch:
    """A validated request as columns of Python values (None = missing), in the model's
    input order (numeric features, then categorical, each in schema order)."""

    columns: dict[str, list[Any]]
    rows: int


def parse_records(contract: Contract, body: bytes) -> Batch:
    """Validate a records payload (JSON bytes) and transpose it into columns."""
    try:
        rows = contract.records.validate_json(body)
    except ValidationError as exc:
        raise _validation_error(exc, contract.max_rows) from None
    # Transpose in C: one itemgetter call per row, one zip for the whole batch.
    values = map(operator.itemgetter(*contract.features), rows)
    if len(contract.features) == 1:
        values = ((value,) for value in values)
    columns = zip(*values, strict=True)
    return Batch(dict(zip(contract.features, map(list, columns), strict=True)), len(rows))


def parse_columns(contract: Contract, body: bytes) -> Batch:
    """Validate a columnar payload (JSON bytes); every column must have the same length."""
    try:
        columns = contract.columns.validate_json(body)
    except ValidationError as exc:
        raise _validation_error(exc, contract.max_rows) from None
    lengths = {name: len(values) for name, values in columns.items()}
    expected = lengths[contract.features[0]]
    uneven = [name for name, n in lengths.items() if n != expected]
    if uneven:
        raise RequestError(
            422,
            [
                {
                    "loc": ["body", name],
                    "msg": f"has {lengths[name]} values; {contract.features[0]!r} has {expected}: "
                    "every column must have the same length",
                    "type": "column_length",
                }
                for name in uneven
            ],
        )
    return Batch({name: columns[name] for name in contract.features}, expected)


def unknown_categories(contract: Contract, batch: Batch) -> list[dict[str, Any]]:
    """Category values the model never saw in training (scored as no known level)."""
    found = []
    for name in contract.categorical:
        known = contract.levels[name]
        for row, value in enumerate(batch.columns[name]):
            if value is not None and value not in known:
                found.append({"row": row, "field": name, "value": value})
    return found


def model_inputs(contract: Contract, batch: Batch) -> list[np.ndarray]:
    """The ONNX feeds for a validated batch, in the converted model's input order.

    Same conventions as `features.onnx_inputs` (numeric float32 with NaN for missing,
    categorical strings with MISSING_CATEGORY), built without pandas: all numeric
    columns in one conversion (numpy turns None into NaN itself), each feed a contiguous
    (n, 1) view of its row.
    """
    feeds: list[np.ndarray] = []
    if contract.numeric:
        columns = [batch.columns[name] for name in contract.numeric]
        matrix = np.array(columns, dtype=np.float32).reshape(len(columns), batch.rows, 1)
        feeds.extend(matrix)
    for name in contract.categorical:
        values = [MISSING_CATEGORY if v is None else v for v in batch.columns[name]]
        feeds.append(np.asarray(values, dtype=object).reshape(-1, 1))
    return feeds


# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedModel:
    session: Any
    input_names: tuple[str, ...]
    sha256: str
    metadata: dict[str, Any]

    def predict(self, feeds: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = self.session.run(
            None, dict(zip(self.input_names, feeds, strict=True))
        )
        proba = np.asarray(probabilities, dtype=np.float64)
        # As train.onnx_predict: float32 rows sum to 1 only within ~1e-7.
        proba /= proba.sum(axis=1, keepdims=True)
        return np.asarray(labels).astype(str), proba

    def predict_values(self, feeds: list[np.ndarray]) -> np.ndarray:
        """A regression model's predicted values, one float64 per row."""
        (values,) = self.session.run(None, dict(zip(self.input_names, feeds, strict=True)))
        return np.asarray(values, dtype=np.float64).reshape(-1)


def git_commit(root: Path) -> str:
    """GIT_COMMIT from the environment (the image), else the checkout's HEAD."""
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _read_json(path: Path, what: str) -> Any:
    from mlops_template.files import read_json

    try:
        return read_json(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: {what} not found; build the model first (`make run`)") from None
    except ValueError as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from None


def verify_model(root: Path) -> tuple[bytes, dict[str, Any]]:
    """The ONNX model's bytes, after checking their sha256 against train_info.json."""
    from mlops_template.train import sha256

    info = _read_json(root / paths.TRAIN_INFO, "training info")
    expected = (info.get("sha256") or {}).get(paths.MODEL_ONNX.name)
    if not expected:
        raise ModelError(
            f"{root / paths.TRAIN_INFO}: no sha256 recorded for {paths.MODEL_ONNX.name}"
        )
    try:
        model = (root / paths.MODEL_ONNX).read_bytes()
    except FileNotFoundError:
        raise ModelError(
            f"{root / paths.MODEL_ONNX}: model not found; build it first (`make run`)"
        ) from None
    actual = sha256(model)
    if actual != expected:
        raise ModelError(
            f"{root / paths.MODEL_ONNX}: sha256 {actual} does not match {expected} recorded in "
            f"{root / paths.TRAIN_INFO}; the model file was changed or comes from another run: "
            "refusing to serve it (rebuild with `make run`)"
        )
    return model, info


def load_model(
    root: Path, contract: Contract, params: ServeParams, version: str, spinning: bool = True
) -> LoadedModel:
    """Verify, load and warm up the ONNX model; gather what /metadata shows.

    spinning=False: onnxruntime's pool threads sleep between calls instead of spinning.
    For batch scoring, whose own thread reads, validates and writes chunks while the
    model runs: spinning pool threads would take the CPU it needs (and, on a machine
    shared with other jobs, burn it while descheduled peers hold the work)."""
    from mlops_template.train import onnx_session

    started = time.perf_counter()
    model, info = verify_model(root)
    try:
        session = onnx_session(model, threads=params.onnx_threads, spinning=spinning)
    except Exception as exc:
        raise ModelError(f"{root / paths.MODEL_ONNX}: onnxruntime cannot load it ({exc})") from None
    input_names = tuple(i.name for i in session.get_inputs())
    if len(input_names) != len(contract.features):
        raise ModelError(
            f"{root / paths.MODEL_ONNX} has {len(input_names)} inputs but {root / paths.SCHEMA} "
            f"lists {len(contract.features)} features: they come from different runs"
        )
    metrics_path = root / paths.METRICS
    metrics = _read_json(metrics_path, "metrics") if metrics_path.exists() else None
    if metrics is None:
        logger.warning("%s not found: /metadata shows no metrics", metrics_path)
    loaded = LoadedModel(
        session=session,
        input_names=input_names,
        sha256=info["sha256"][paths.MODEL_ONNX.name],
        metadata={
            "model_version": version,
            "git_commit": git_commit(root),
            "model_sha256": info["sha256"][paths.MODEL_ONNX.name],
            "metrics": metrics,
            "train": {k: v for k, v in info.items() if k != "sha256"},
            "schema": contract.schema,
            "limits": {
                "max_rows": params.max_rows,
                "max_body_mb": params.max_body_mb,
                "unknown_categories": params.unknown_categories,
            },
        },
    )
    _warm_up(loaded, contract)
    logger.info(
        "model %s loaded from %s (sha256 %s..., %.2fs)",
        version,
        root / paths.MODEL_ONNX,
        loaded.sha256[:12],
        time.perf_counter() - started,
    )
    return loaded


def _warm_up(model: LoadedModel, contract: Contract) -> None:
    """Predict a typical row and a row of nulls: the first call allocates; check the
    output shapes, and that the model imputes a null in every feature (the request
    contract accepts one anywhere)."""
    columns: dict[str, list[Any]] = {}
    for spec in contract.schema["features"]:
        if spec["kind"] == "numeric":
            columns[spec["name"]] = [spec.get("mean") or 0.0, None]
        else:
            columns[spec["name"]] = [next(iter(spec.get("levels") or []), None), None]
    if contract.regression:
        outputs = len(model.session.get_outputs())
        if outputs != 1:
            raise ModelError(
                f"the model has {outputs} outputs but the schema's task is regression (one "
                "value per row): model and schema come from different runs"
            )
        values = model.predict_values(model_inputs(contract, Batch(columns, 2)))
        if values.shape != (2,) or not np.isfinite(values[1]):
            raise ModelError(
                "the model gives no finite value for a row of nulls: it does not impute "
                "missing values, which the request contract accepts in every feature (rebuild "
                "it with this template's pipeline, `make run`)"
            )
        return
    _, proba = model.predict(model_inputs(contract, Batch(columns, 2)))
    if proba.shape != (2, len(contract.classes)):
        raise ModelError(
            f"the model returns {proba.shape[1]} class probabilities but the schema lists "
            f"{len(contract.classes)} classes: model and schema come from different runs"
        )
    if not np.isfinite(proba[1]).all():
        raise ModelError(
            "the model gives no finite probabilities for a row of nulls: it does not impute "
            "missing values, which the request contract accepts in every feature (rebuild "
            "it with this template's pipeline, `make run`)"
        )


# --------------------------------------------------------------------------------------
# Prediction log hook (issue 5)
# --------------------------------------------------------------------------------------


class PredictionBatch(NamedTuple):
    """One answered request, as a prediction log receives it (a named tuple: cheap to
    build on the request path)."""

    request_id: str
    timestamp: float  # unix seconds
    model_version: str
    features: dict[str, list[Any]]  # validated inputs by feature (Batch.columns), None = missing
    classes: tuple[str, ...]
    predictions: list[str]
    probabilities: np.ndarray  # rows x classes, float64
    # The request body as received (validated JSON: records or columns) and the response
    # body as sent: what `predlog.PredictionLogger` stores, without re-encoding anything.
    request_body: bytes | None = None
    response_body: bytes | None = None


class PredictionLog(Protocol):
    def record(self, batch: PredictionBatch) -> None: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------------------
# Request handling, framework-free (the FastAPI routes and the ASGI fast path share it)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    root: Path
    params: ServeParams
    model_version: str = "dev"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


Parser = Callable[[Contract, bytes], Batch]


def _too_large(message: str) -> RequestError:
    return RequestError(413, [{"loc": ["body"], "msg": message, "type": "body_too_large"}])


class Service:
    """The model's lifecycle and the answer to each endpoint, as status + JSON bytes."""

    def __init__(
        self,
        settings: Settings,
        contract: Contract,
        prediction_log: PredictionLog | None = None,
        loader: Callable[[], LoadedModel] | None = None,
    ) -> None:
        self.settings = settings
        self.contract = contract
        self.version = settings.model_version
        self.body_limit = int(settings.params.max_body_mb * 1024 * 1024)
        self.prediction_log = prediction_log
        self.loader = loader or (
            lambda: load_model(settings.root, contract, settings.params, self.version)
        )
        self.status: Literal["loading", "ready", "failed"] = "loading"
        self.error: str | None = None
        self.model: LoadedModel | None = None
        self._metadata = b""
        self._classes = list(contract.classes)

    # -- lifecycle

    def start_loading(self) -> threading.Thread:
        """Load in a daemon thread: the server answers /health (503) meanwhile, and a
        load that hangs (a stuck volume) cannot keep the process from shutting down."""
        thread = threading.Thread(target=self._load, name="model-loader", daemon=True)
        thread.start()
        return thread

    def _load(self) -> None:
        try:
            model = self.loader()
        except ModelError as exc:
            self.error, self.status = str(exc), "failed"
            logger.error("cannot serve: %s", exc)
            return
        except Exception as exc:  # anything else: still reported on /health
            self.error, self.status = f"{type(exc).__name__}: {exc}", "failed"
            logger.exception("cannot serve: unexpected error while loading the model")
            return
        self._metadata = strict_json(model.metadata)
        self.model = model
        self.status = "ready"

    def close(self) -> None:
        if self.prediction_log is not None:
            try:
                self.prediction_log.close()
            except Exception:
                logger.exception("prediction log: close failed")

    # -- endpoints

    def _unavailable(self) -> Answer:
        if self.status == "failed":
            message = f"model failed to load: {self.error}"
        else:
            message = "model is loading"
        return Answer(503, strict_json({"message": message}), (("retry-after", "1"),))

    def health(self) -> Answer:
        if self.status == "ready":
            return Answer(200, strict_json({"status": "ok", "model_version": self.version}))
        body = {"status": self.status, "model_version": self.version, "error": self.error}
        return Answer(503, strict_json(body), (("retry-after", "1"),))

    def metadata(self) -> Answer:
        if self.model is None:
            return self._unavailable()
        return Answer(200, self._metadata)

    async def predict(
        self,
        chunks: AsyncIterator[bytes],
        declared_length: str | None,
        request_id: str | None,
        parse: Parser,
    ) -> Answer:
        model = self.model
        if model is None:
            return self._unavailable()
        try:
            body = await self._read(chunks, declared_length)
            batch = parse(self.contract, body)
        except RequestError as exc:
            return Answer(exc.status, exc.body())
        request_id = _request_id(request_id)
        try:
            return self._answer(model, batch, request_id, body)
        except Exception:  # a model or runtime failure: still a JSON answer, logged
            logger.exception("request %s: prediction failed", request_id)
            return internal_error(request_id)

    async def _read(self, chunks: AsyncIterator[bytes], declared_length: str | None) -> bytes:
        limit = self.body_limit
        declared = int(declared_length) if declared_length and declared_length.isdigit() else 0
        if declared > limit:
            raise _too_large(f"body of {declared} bytes exceeds {limit} (serve.max_body_mb)")
        parts, size = [], 0
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise _too_large(f"body exceeds {limit} bytes (serve.max_body_mb)")
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _answer(self, model: LoadedModel, batch: Batch, request_id: str, body: bytes) -> Answer:
        contract = self.contract
        unknown = unknown_categories(contract, batch) if contract.categorical else []
        if contract.regression:
            return self._answer_values(model, batch, request_id, unknown, body)
        labels, proba = model.predict(model_inputs(contract, batch))
        if not np.isfinite(proba.sum()):  # one scalar check; rows only when it fails
            bad_rows = np.flatnonzero(~np.isfinite(proba).all(axis=1))
            error = RequestError(
                422,
                [
                    {
                        "loc": ["body", int(row)],
                        "msg": "the model returns no finite probabilities for this row "
                        "(extreme values?)",
                        "type": "unscorable_row",
                    }
                    for row in bad_rows
                ],
            )
            return Answer(error.status, error.body())
        predictions = labels.tolist()
        payload = {
            "model_version": self.version,
            "request_id": request_id,
            "classes": self._classes,
            "predictions": predictions,
            "probabilities": proba.tolist(),
            "unknown_categories": unknown,
        }
        response = strict_json(payload)
        self._log(request_id, batch, contract.classes, predictions, proba, body, response)
        return Answer(200, response, ((REQUEST_ID_HEADER, request_id),))

    def _answer_values(
        self,
        model: LoadedModel,
        batch: Batch,
        request_id: str,
        unknown: list[dict[str, Any]],
        body: bytes,
    ) -> Answer:
        """A regression model's answer: one predicted value per row."""
        values = model.predict_values(model_inputs(self.contract, batch))
        if not np.isfinite(values).all():
            error = RequestError(
                422,
                [
                    {
                        "loc": ["body", int(row)],
                        "msg": "the model returns no finite value for this row (extreme values?)",
                        "type": "unscorable_row",
                    }
                    for row in np.flatnonzero(~np.isfinite(values))
                ],
            )
            return Answer(error.status, error.body())
        predictions = values.tolist()
        payload = {
            "model_version": self.version,
            "request_id": request_id,
            "predictions": predictions,
            "unknown_categories": unknown,
        }
        response = strict_json(payload)
        # No classes and no probabilities: the log keeps the response as sent, and its
        # reader gives the values as `log.prediction` (the drift monitor's predicted value).
        self._log(
            request_id, batch, (), predictions, np.empty((len(predictions), 0)), body, response
        )
        return Answer(200, response, ((REQUEST_ID_HEADER, request_id),))

    def _log(
        self,
        request_id: str,
        batch: Batch,
        classes: tuple[str, ...],
        predictions: list[Any],
        probabilities: np.ndarray,
        body: bytes,
        response: bytes,
    ) -> None:
        if self.prediction_log is None:
            return
        try:
            self.prediction_log.record(
                PredictionBatch(
                    request_id,
                    time.time(),
                    self.version,
                    batch.columns,
                    classes,
                    predictions,
                    probabilities,
                    body,
                    response,
                )
            )
        except Exception:  # logging never fails a request
            logger.warning("prediction log: record failed", exc_info=True)


def internal_error(request_id: str | None = None) -> Answer:
    """The 500 answer: a JSON body (never the server's plain-text default)."""
    message = "internal error: the prediction failed; the server log has the traceback"
    if request_id is None:
        return Answer(500, strict_json({"message": message}))
    body = {"message": f"{message} (request id {request_id})", "request_id": request_id}
    return Answer(500, strict_json(body), ((REQUEST_ID_HEADER, request_id),))


def _request_id(given: str | None) -> str:
    if given and len(given) <= MAX_REQUEST_ID_LENGTH and given.isprintable():
        return given
    return uuid.uuid4().hex


# --------------------------------------------------------------------------------------
# The app: FastAPI (docs, OpenAPI, every route) behind a thin ASGI fast path
# --------------------------------------------------------------------------------------


class Health(BaseModel):
    status: Literal["ok", "loading", "failed"]
    model_version: str
    error: str | None = None


class UnknownCategory(BaseModel):
    row: int
    field: str
    value: str


class PredictResponse(BaseModel):
    model_version: str
    request_id: str
    classes: list[str] = Field(description="Column order of `probabilities`.")
    predictions: list[str] = Field(description="Predicted class per row.")
    probabilities: list[list[float]] = Field(description="Per row, one probability per class.")
    unknown_categories: list[UnknownCategory] = Field(
        description="Category values not seen in training (serve.unknown_categories: accept)."
    )


class ValuesResponse(BaseModel):
    """A regression model's answer (schema task `regression`)."""

    model_version: str
    request_id: str
    predictions: list[float] = Field(description="Predicted value per row.")
    unknown_categories: list[UnknownCategory] = Field(
        description="Category values not seen in training (serve.unknown_categories: accept)."
    )


class ErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str
    input: Any = None


class ErrorResponse(BaseModel):
    message: str
    detail: list[ErrorItem]


class Unavailable(BaseModel):
    message: str


def _response(answer: Answer) -> Any:
    from starlette.responses import Response

    return Response(answer.body, answer.status, dict(answer.headers), media_type=JSON)


def _openapi_body(schema: dict[str, Any], example: Any) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": schema, "example": example}},
        }
    }


def _example_row(contract: Contract) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for spec in contract.schema["features"]:
        if spec["kind"] == "numeric":
            row[spec["name"]] = spec.get("mean") or 0.0
        else:
            row[spec["name"]] = next(iter(spec.get("levels") or []), None) or "value"
    return row


def build_fastapi(service: Service) -> Any:
    """Every endpoint as a FastAPI route (OpenAPI document, /docs, error handling)."""
    from fastapi import FastAPI

    contract = service.contract

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        service.start_loading()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(
        title="mlops-template model API",
        version=service.version,
        description=API_DESCRIPTION,
        lifespan=lifespan,
    )

    async def unexpected_error(request: Request, exc: Exception) -> Any:
        # Starlette's default 500 is plain text: every body of this API is JSON.
        logger.error("%s %s failed: %r", request.method, request.url.path, exc)
        return _response(internal_error())

    app.add_exception_handler(Exception, unexpected_error)

    @app.get(
        "/health",
        response_model=Health,
        responses={503: {"model": Health, "description": "Model loading, or failed to load."}},
    )
    async def health() -> Any:
        return _response(service.health())

    @app.get(
        "/metadata",
        responses={
            200: {"description": "Model version, git commit, metrics, schema, training info."},
            503: {"model": Unavailable, "description": "Model not loaded (yet)."},
        },
    )
    async def metadata() -> Any:
        return _response(service.metadata())

    responses: dict[int | str, dict[str, Any]] = {
        200: {
            "model": ValuesResponse if contract.regression else PredictResponse,
            "description": "Predictions.",
        },
        413: {"model": ErrorResponse, "description": "Too many rows, or body too large."},
        422: {"model": ErrorResponse, "description": "Invalid request; each field is named."},
        503: {"model": Unavailable, "description": "Model not loaded (yet)."},
    }
    example = _example_row(contract)

    async def _predict(request: Request, parse: Parser) -> Any:
        headers = request.headers
        answer = await service.predict(
            request.stream(), headers.get("content-length"), headers.get(REQUEST_ID_HEADER), parse
        )
        return _response(answer)

    @app.post(
        "/predict",
        responses=responses,
        openapi_extra=_openapi_body(contract.records_json_schema(), [example]),
        summary="Predict a list of records",
    )
    async def predict(request: Request) -> Any:
        return await _predict(request, parse_records)

    @app.post(
        "/predict/columns",
        responses=responses,
        openapi_extra=_openapi_body(
            contract.columns_json_schema(), {k: [v] for k, v in example.items()}
        ),
        summary="Predict rows given as columns (cheaper for big batches)",
    )
    async def predict_columns(request: Request) -> Any:
        return await _predict(request, parse_columns)

    return app


class App:
    """The served ASGI app: POST /predict and /predict/columns go straight to the
    `Service` (skipping FastAPI's routing and dependency layers, ~0.2 ms of a ~0.5 ms
    request); everything else, lifespan included, goes to the FastAPI app, whose
    routes for the same paths answer identically."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.fastapi = build_fastapi(service)
        self.fast_paths: dict[str, Parser] = {
            "/predict": parse_records,
            "/predict/columns": parse_columns,
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            parse = self.fast_paths.get(path)
            if parse is not None:
                await self._predict(scope, receive, send, parse)
                return
        await self.fastapi(scope, receive, send)

    async def _predict(self, scope: dict[str, Any], receive: Any, send: Any, parse: Parser) -> None:
        length = request_id = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                length = value.decode("latin-1")
            elif key == b"x-request-id":
                request_id = value.decode("latin-1")

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        answer = await self.service.predict(chunks(), length, request_id, parse)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(answer.body)).encode()),
        ]
        headers += [(k.encode(), v.encode("latin-1")) for k, v in answer.headers]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})


def create_app(
    settings: Settings,
    schema: dict[str, Any],
    prediction_log: PredictionLog | None = None,
    loader: Callable[[], LoadedModel] | None = None,
) -> App:
    """The ASGI app for `schema`'s model. The model loads in the background when the
    app starts (`loader` overrides how; by default `load_model` on `settings.root`)."""
    contract = build_contract(schema, settings.params)
    return App(Service(settings, contract, prediction_log, loader))


def settings_from_env(root: Path | None = None) -> Settings:
    from mlops_template.config import load_params

    root = Path(os.environ.get("MLOPS_PROJECT_ROOT", root or Path.cwd()))
    params = load_params(root / paths.PARAMS)
    return Settings(
        root=root, params=params.serve, model_version=os.environ.get("MODEL_VERSION") or "dev"
    )


def app_from_env() -> App:
    """The uvicorn factory (`uvicorn mlops_template.serve:app_from_env --factory`): the
    project in the working directory (or MLOPS_PROJECT_ROOT), params from its params.yaml."""
    import logging

    from mlops_template import log

    if not logging.getLogger(log.LOGGER_NAME).handlers:
        log.configure()
    from mlops_template import predlog

    settings = settings_from_env()
    schema = _read_json(settings.root / paths.SCHEMA, "data schema")
    # Every prediction goes to the SQLite log the drift monitor reads (PREDICTION_LOG,
    # default logs/predictions.sqlite under the project; "off" disables it).
    environ = dict(os.environ)
    environ.setdefault(predlog.ENV_VAR, str(settings.root / paths.PREDICTION_LOG))
    # A regression model's answers carry no classes: the log stores its values as sent.
    prediction_log = predlog.from_env(environ, classes=schema.get("classes") or [])
    return create_app(settings, schema, prediction_log=prediction_log)
