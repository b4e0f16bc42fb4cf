"""The prediction log: every request the API answers, in SQLite, written off the request path.

What is stored is what was served: each request's body as the client sent it (validated
JSON: records `[{feature: value}, ...]` or columns `{feature: [values]}`) and the response
the client got (`classes`, `predictions`, `probabilities`, `unknown_categories`, ...), with
its request id, timestamp and model version. Storing the bytes the server already holds
is what keeps logging cheap: the request path appends a tuple to a queue (no parsing, no
JSON encoding, no copy), and the writer thread's work per request is a few list appends.
The writer shares the server's interpreter (one GIL on a small machine): any per-row
Python work there is taken from serving, so all of it is left to the reader
(bench/monitor.py measures serving with the log on and off).

Writer: `PredictionLogger.record(batch)` (the serving API's `PredictionLog` hook) or
`log(records, predictions, probabilities, ...)` (any caller: features as row mappings, a
DataFrame or columns; encoded on the writer thread) only queue the request and return. A
background thread takes what is queued every `flush_interval` seconds, or as soon as
`flush_rows` rows wait, and inserts it as one row per model version in one transaction.
The queue is bounded (`max_queue_rows`): when the database cannot keep up, new requests
are dropped and counted, the request is never blocked. Nothing here ever raises into the
caller: a bad row, a full disk, a read-only path or a locked database becomes a counted,
rate-limited warning in the log (`stats()` has the counts).

Database: WAL mode (readers, e.g. the drift check, do not block the writer),
`PRAGMA user_version` = `SCHEMA_VERSION`. Table `prediction_batches`, one row per write:

    id, ts_first, ts_last (unix seconds, UTC), model_version, requests, rows,
    request_ids  JSON [request id per request]
    timestamps   JSON [unix seconds per request]
    inputs       JSON [request body per request]
    outputs      JSON [response body per request]

Views for SQL by hand: `prediction_requests` (request_id, ts, model_version, request,
response: one row per request) and `prediction_rows` (request_id, row, ts, model_version,
prediction, features and probabilities as JSON objects: one row per prediction), e.g.
`SELECT * FROM prediction_rows WHERE ts > unixepoch('now', '-1 day')`.

Reader: `read_log(path, since, until)` returns one DataFrame for a time window: the
feature columns, plus the log's own columns prefixed `log.` (`log.timestamp`,
`log.request_id`, `log.row` (the row's position in its request), `log.model_version`, `log.prediction`, `log.probability:<class>`). A
regression model's responses have no classes and no probabilities: `log.prediction` holds
its predicted values (numbers) and there are no probability columns.

The path comes from the environment variable `PREDICTION_LOG` (`from_env`); unset means
`logs/predictions.sqlite`, and `off` turns logging off. A `postgresql://` URL there logs
to that PostgreSQL database instead (pglog.py: the same table, so the same reader; for
several API processes or hosts writing to one log).
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import math
import operator
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_template import paths
from mlops_template.log import get_logger

logger = get_logger("predlog")

ENV_VAR = "PREDICTION_LOG"
DISABLED_VALUES = {"", "0", "off", "false", "none", "disabled"}
META_PREFIX = "log."
TIMESTAMP = f"{META_PREFIX}timestamp"
REQUEST_ID = f"{META_PREFIX}request_id"
MODEL_VERSION = f"{META_PREFIX}model_version"
ROW = f"{META_PREFIX}row"  # position within its request (0-based): (request_id, row) is a key
PREDICTION = f"{META_PREFIX}prediction"
PROBABILITY_PREFIX = f"{META_PREFIX}probability:"

SCHEMA_VERSION = 2
TABLE_SQL = """
CREATE TABLE IF NOT EXISTS prediction_batches (
    id INTEGER PRIMARY KEY,
    ts_first REAL NOT NULL,
    ts_last REAL NOT NULL,
    model_version TEXT NOT NULL,
    requests INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    request_ids BLOB NOT NULL,
    timestamps BLOB NOT NULL,
    inputs BLOB NOT NULL,
    outputs BLOB NOT NULL
)
"""
INDEX_SQL = (
    "CREATE INDEX IF NOT EXISTS prediction_batches_ts ON prediction_batches (ts_last, ts_first)"
)
REQUESTS_VIEW_SQL = """
CREATE VIEW IF NOT EXISTS prediction_requests AS
SELECT json_extract(CAST(b.request_ids AS TEXT), '$[' || i.key || ']') AS request_id,
       json_extract(CAST(b.timestamps AS TEXT), '$[' || i.key || ']') AS ts,
       b.model_version AS model_version,
       i.value AS request,
       json_extract(CAST(b.outputs AS TEXT), '$[' || i.key || ']') AS response
FROM prediction_batches AS b, json_each(CAST(b.inputs AS TEXT)) AS i
"""
ROWS_VIEW_SQL = """
CREATE VIEW IF NOT EXISTS prediction_rows AS
SELECT r.request_id, p.key AS row, r.ts, r.model_version, p.value AS prediction,
       CASE json_type(r.request)
         WHEN 'array' THEN json_extract(r.request, '$[' || p.key || ']')
         ELSE (SELECT json_group_object(f.key, json_extract(f.value, '$[' || p.key || ']'))
                 FROM json_each(r.request) AS f)
       END AS features,
       (SELECT json_group_object(
                 c.value, json_extract(r.response, '$.probabilities[' || p.key || '][' || c.key || ']'))
          FROM json_each(r.response, '$.classes') AS c) AS probabilities
FROM prediction_requests AS r, json_each(r.response, '$.predictions') AS p
"""
INSERT_SQL = (
    "INSERT INTO prediction_batches (ts_first, ts_last, model_version, requests, rows, "
    "request_ids, timestamps, inputs, outputs) VALUES (?, ?, ?, ?, ?, ?, ?, zeroblob(?), zeroblob(?))"
)
# The bodies are UTF-8 JSON written straight into BLOBs (incremental blob I/O, GIL released
# while SQLite copies) with 64 KiB pages. Joining them into one bytes object and binding
# it instead held the GIL for three copies of every body: 8 % of the server's time at
# 1000-row requests. As TEXT with 4 KiB pages a ~1 MB insert cost 2.3 ms of CPU, as a
# BLOB with 64 KiB pages 0.9 ms. The views CAST it to text for SQLite's JSON functions.
PAGE_SIZE = 65536
CACHE_KIB = 8192

try:  # orjson (a dependency of DVC) encodes and parses in C
    import orjson

    def _fast_dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)

    _loads = orjson.loads
except ImportError:  # pragma: no cover - exercised only without orjson

    def _fast_dumps(value: Any) -> bytes:
        raise TypeError("no orjson")

    _loads = json.loads


class LogFormatError(ValueError):
    """The file is not a prediction log this version can read or write."""


def _dumps(value: Any) -> bytes:
    """UTF-8 JSON; NaN/inf and missing values become null."""
    try:
        return _fast_dumps(value)
    except TypeError:  # numpy scalars, pandas NA, ...: the slow, general path
        return json.dumps(_plain(value), allow_nan=False, separators=(",", ":")).encode()


def _plain(value: Any) -> Any:
    """JSON-safe Python values (NaN/inf/NA -> null, numpy scalars -> Python)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray | pd.Series) else list(values)


def _column(values: Any) -> Any:
    """A column ready for JSON without a Python loop over its values: numeric arrays stay
    arrays (orjson writes them in C, NaN as null), anything else becomes a list."""
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "fiub":
            return np.ascontiguousarray(values)  # orjson encodes contiguous arrays only
        return values.tolist()
    return values if isinstance(values, list) else list(values)


def _columns(records: Any, rows: int) -> dict[str, Any]:
    """Features of a request as {name: column} from columns, a DataFrame or row mappings."""
    if isinstance(records, pd.DataFrame):
        columns = {str(name): _column(records[name]) for name in records.columns}
    elif isinstance(records, Mapping):
        columns = {str(name): _column(values) for name, values in records.items()}
    else:
        records = list(records)
        names = list(dict.fromkeys(name for record in records for name in record))
        columns = {str(n): [r.get(n) for r in records] for n in names}
    for name, values in columns.items():
        if len(values) != rows:
            raise ValueError(f"feature {name!r} has {len(values)} values for {rows} rows")
    return columns


def _probability_rows(
    probabilities: Any, rows: int, classes: Sequence[str] | None
) -> tuple[list[str], Any]:
    """(class names, rows x classes) from an array, one {class: p} per row, or columns."""
    if probabilities is None:
        return [str(c) for c in classes or []], None
    if isinstance(probabilities, Mapping):  # {class: column}
        names = [str(k) for k in probabilities]
        columns = [np.asarray(v, dtype=float) for v in probabilities.values()]
        matrix = np.column_stack(columns) if columns else np.empty((rows, 0))
    elif len(probabilities) and isinstance(probabilities[0], Mapping):  # {class: p} per row
        keys = list(dict.fromkeys(k for row in probabilities for k in row))
        names = [str(k) for k in keys]
        matrix = np.array([[row.get(k, np.nan) for k in keys] for row in probabilities], float)
    else:
        matrix = np.asarray(probabilities, dtype=float).reshape(len(probabilities), -1)
        names = (
            [str(c) for c in classes]
            if classes is not None
            else [str(i) for i in range(matrix.shape[1])]
        )
    if matrix.shape[0] != rows:
        raise ValueError(f"{rows} rows but {matrix.shape[0]} probability rows")
    if matrix.shape[1] != len(names):
        raise ValueError(f"{matrix.shape[1]} probability columns for classes {names}")
    return names, np.ascontiguousarray(matrix)


@dataclass(frozen=True)
class LogStats:
    queued: int  # rows waiting to be written
    written: int  # rows committed to the database
    dropped: int  # rows refused because the queue was full
    failed: int  # rows lost to bad input or a database error


# A queued request: (timestamp, request id, model version, rows, request JSON, response
# JSON, raw). `raw` is None for the serving API's requests (both JSON bodies given) and
# (records, predictions, probabilities, classes) for `log()`, encoded on the writer thread.
_Entry = tuple[float, str, str, int, bytes | None, bytes | None, tuple[Any, ...] | None]


class PredictionLogger:
    """Non-blocking SQLite writer for predictions (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        *,
        classes: Sequence[str] | None = None,
        flush_rows: int = 4096,
        flush_interval: float = 0.2,
        max_queue_rows: int = 100_000,
        max_batch_bytes: int = 16 * 1024 * 1024,
        writer_nice: int = 10,
        busy_timeout: float = 5.0,
        warn_interval: float = 60.0,
    ) -> None:
        from mlops_template import pglog

        # a postgresql:// URL: the log is that database (pglog.py); else a SQLite file
        self.url = str(path) if pglog.is_url(path) else None
        self.path = Path(path) if self.url is None else Path(pglog.redacted(self.url))
        self.classes = [str(c) for c in classes] if classes is not None else None
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval
        self.max_queue_rows = max_queue_rows
        self.max_batch_bytes = max_batch_bytes
        self.writer_nice = writer_nice
        self.busy_timeout = busy_timeout
        self.warn_interval = warn_interval
        self._cond = threading.Condition()
        self._pending: deque[_Entry] = deque()
        self._pending_rows = 0
        self._queued = 0  # entries handed in so far
        self._done = 0  # entries finished (written or failed) so far
        self._flush_wanted = False
        self._closing = False
        self._written = self._dropped = self._failed = 0
        self._last_warning: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._connection: sqlite3.Connection | None = None
        self._postgres: Any = None  # the writer's psycopg connection
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ------------------------------------------------------------------ request path

    def record(self, batch: Any) -> None:
        """The serving API's hook (`mlops_template.serve.PredictionLog`): one answered
        request as a `PredictionBatch`. With its request and response bodies (as the API
        gives them) it is queued as is; without, it goes the way of `log()`."""
        try:
            body, response = batch.request_body, batch.response_body
            if body is None or response is None:
                self.log(
                    batch.features,
                    batch.predictions,
                    batch.probabilities,
                    batch.model_version,
                    batch.request_id,
                    classes=batch.classes,
                    timestamp=batch.timestamp,
                )
                return
            entry = (
                float(batch.timestamp),
                str(batch.request_id),
                str(batch.model_version),
                len(batch.predictions),
                body if type(body) is bytes else _utf8(body),
                response if type(response) is bytes else _utf8(response),
                None,
            )
        except Exception as exc:  # a broken batch must not break serving
            with self._cond:
                self._count_failure("bad_input", 1, f"cannot queue prediction log rows: {exc!r}")
            return
        self._enqueue(entry)

    def log(
        self,
        records: Sequence[Mapping[str, Any]] | Mapping[str, Sequence[Any]] | pd.DataFrame,
        predictions: Sequence[Any],
        probabilities: Any,
        version: str,
        request_id: str,
        *,
        classes: Sequence[str] | None = None,
        timestamp: float | None = None,
    ) -> bool:
        """Queue one request's rows; True if queued. Never blocks on I/O, never raises.

        `records`: one mapping per row, a DataFrame, or a mapping of columns.
        `probabilities`: rows x classes (array; `classes` names its columns, else the
        logger's), one {class: p} mapping per row, or {class: column}.
        `timestamp`: unix seconds (now). Checked and encoded on the writer thread.
        """
        try:
            entry = (
                time.time() if timestamp is None else float(timestamp),
                str(request_id),
                str(version),
                len(predictions),
                None,
                None,
                (records, predictions, probabilities, classes),
            )
        except Exception as exc:  # e.g. predictions that have no length
            with self._cond:
                self._count_failure("bad_input", 1, f"cannot queue prediction log rows: {exc!r}")
            return False
        return self._enqueue(entry)

    def _enqueue(self, entry: _Entry) -> bool:
        rows = entry[3]
        with self._cond:
            if self._closing:
                self._count_failure("closed", rows, "prediction log is closed")
                return False
            if self._pending_rows + rows > self.max_queue_rows:
                self._dropped += rows
                self._warn(
                    "dropped",
                    "prediction log queue full (%d rows waiting, max_queue_rows %d): "
                    "dropped %d row(s), %d dropped so far",
                    self._pending_rows,
                    self.max_queue_rows,
                    rows,
                    self._dropped,
                )
                return False
            self._pending.append(entry)
            self._queued += 1
            self._pending_rows += rows
            # wake the writer to start its flush timer, or to flush a full batch now
            if len(self._pending) == 1 or self._pending_rows >= self.flush_rows:
                self._cond.notify_all()
        return True

    # ------------------------------------------------------------------ control

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Write everything queued so far now; True when done within `timeout`."""
        with self._cond:
            target = self._queued
            self._flush_wanted = True
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Flush what is queued and stop the writer thread (idempotent)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        atexit.unregister(self.close)

    def stats(self) -> LogStats:
        with self._cond:
            return LogStats(self._pending_rows, self._written, self._dropped, self._failed)

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        if self.writer_nice:
            # Serving first: when the CPU is short, the scheduler runs the event loop
            # before the writer, which catches up when there is idle time (a backlog
            # beyond max_queue_rows is dropped and counted, never waited for). Linux
            # takes a thread id here; elsewhere the call fails and nothing changes.
            with contextlib.suppress(OSError, AttributeError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.writer_nice)
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if self._pending and not self._closing:
                    deadline = self._pending[0][0] + self.flush_interval
                    self._cond.wait_for(
                        lambda: (
                            self._pending_rows >= self.flush_rows
                            or self._flush_wanted
                            or self._closing
                        ),
                        max(0.0, min(deadline - time.time(), self.flush_interval)),
                    )
                batch = list(self._pending)
                self._pending.clear()
                self._pending_rows = 0
                self._flush_wanted = False
                closing = self._closing
            if batch:
                try:
                    self._write(batch)
                except Exception as exc:  # never let the writer thread die
                    with self._cond:
                        self._count_failure(
                            "writer", sum(e[3] for e in batch), f"prediction log: {exc!r}"
                        )
            with self._cond:
                self._done += len(batch)
                self._cond.notify_all()
                if closing and not self._pending:
                    break
        self._close_connection()

    def _write(self, batch: list[_Entry]) -> None:
        # per version: timestamps, request ids, request bodies, responses, rows
        groups: dict[str, tuple[list[float], list[str], list[bytes], list[bytes], list[int]]] = {}
        for ts, request_id, version, rows, body, response, raw in batch:
            if raw is not None:
                try:
                    body, response = self._encode(raw, rows)
                except Exception as exc:
                    self._drop(request_id, rows, exc)
                    continue
            group = groups.get(version)
            if group is None:
                group = groups[version] = ([], [], [], [], [])
            group[0].append(ts)
            group[1].append(request_id)
            group[2].append(body)  # type: ignore[arg-type]
            group[3].append(response)  # type: ignore[arg-type]
            group[4].append(rows)
        if not groups:
            return
        # One transaction per flush in either database: every row of it or none.
        count = 0
        try:
            if self.url is None:
                connection = self._connect()
                with connection:
                    count = self._insert_groups(groups, functools.partial(_insert, connection))
            else:
                from mlops_template import pglog

                if self._postgres is None:
                    self._postgres = pglog.connect(self.url)
                postgres = self._postgres
                with postgres.transaction():
                    count = self._insert_groups(
                        groups,
                        lambda version, stamps, ids, *rest: pglog.insert(
                            postgres, version, stamps, _dumps(ids), _dumps(stamps), *rest
                        ),
                    )
        except Exception as exc:  # sqlite3/psycopg errors, OSError, LogFormatError
            if self.url is None and not isinstance(exc, sqlite3.Error | OSError | LogFormatError):
                raise  # a bug, not the database: _run counts it as the writer's
            self._close_connection()
            count = sum(sum(group[4]) for group in groups.values())
            with self._cond:
                self._count_failure("database", count, f"prediction log {str(self.path)!r}: {exc}")
            return
        with self._cond:
            self._written += count

    def _insert_groups(self, groups: dict[str, Any], insert: Any) -> int:
        """Each version's requests as stored rows of at most max_batch_bytes: rows done."""
        count = 0
        for version, (stamps, ids, bodies, responses, counts) in groups.items():
            for part in _slices(bodies, responses, self.max_batch_bytes):
                rows = sum(counts[part])
                insert(version, stamps[part], ids[part], bodies[part], responses[part], rows)
                count += rows
        return count

    def _encode(self, raw: tuple[Any, ...], rows: int) -> tuple[bytes, bytes]:
        """A `log()` request as the API would have stored it: columns and a response."""
        records, predictions, probabilities, classes = raw
        columns = _columns(records, rows)
        labels = _as_list(predictions)
        if len(labels) != rows:
            raise ValueError(f"{rows} rows but {len(labels)} predictions")
        names, matrix = _probability_rows(probabilities, rows, classes or self.classes)
        if not names and _all_numbers(labels):
            labels = [float(p) for p in labels]  # a regression model's values stay numbers
        elif not all(type(p) is str for p in labels):
            labels = [str(p) for p in labels]
        response = {"classes": names, "predictions": labels, "probabilities": matrix}
        return _dumps(columns), _dumps(response)

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, check_same_thread=False
            )
            try:
                connection.execute(f"PRAGMA page_size = {PAGE_SIZE}")  # before WAL and tables
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")  # safe with WAL
                # a flush's pages stay in memory until commit: with SQLite's default 2 MB
                # they spilled to the WAL mid-transaction (the zero-filled BLOB pages, then
                # again written): 8 MiB cut the writer's CPU per 1000-row request by 35 %
                connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
                with connection:
                    _check_format(connection, self.path, creating=True)
                    connection.execute(TABLE_SQL)
                    connection.execute(INDEX_SQL)
                    connection.execute(REQUESTS_VIEW_SQL)
                    connection.execute(ROWS_VIEW_SQL)
                    connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except (sqlite3.Error, LogFormatError):
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None
        if self._postgres is not None:
            with contextlib.suppress(Exception):
                self._postgres.close()
            self._postgres = None

    # ------------------------------------------------------------------ warnings

    def _count_failure(self, kind: str, rows: int, message: str) -> None:
        self._failed += rows
        self._warn(kind, "%s: %d row(s) not logged, %d so far", message, rows, self._failed)

    def _drop(self, request_id: str, rows: int, exc: Exception) -> None:
        """A request that cannot be stored: counted as failed rows, warned about, skipped."""
        with self._cond:
            self._failed += rows
            self._warn(
                "bad_row",
                "prediction log: request %s not logged (%d row(s)): %r",
                request_id,
                rows,
                exc,
            )

    def _warn(self, kind: str, message: str, *args: Any) -> None:
        """Log a warning at most once per `warn_interval` per kind (caller holds the lock)."""
        now = time.monotonic()
        last = self._last_warning.get(kind)
        if last is not None and now - last < self.warn_interval:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        suppressed = self._suppressed.pop(kind, 0)
        self._last_warning[kind] = now
        suffix = f" ({suppressed} similar warning(s) suppressed)" if suppressed else ""
        logger.warning(message + suffix, *args)


def _all_numbers(values: list[Any]) -> bool:
    return all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool | np.bool_)
        for v in values
    )


def _utf8(text: Any) -> bytes:
    if isinstance(text, str):
        return text.encode()
    if isinstance(text, bytearray | memoryview):
        return bytes(text)
    raise TypeError(f"a request or response body must be bytes or str, not {type(text).__name__}")


SMALL_PIECE = 64 * 1024  # bodies smaller than this are joined before they are written


def _json_array_pieces(items: list[bytes]) -> tuple[int, list[bytes]]:
    """The JSON array of `items` (each a JSON text) as (length, pieces to write in order):
    runs of small items joined (one GIL release per write, not per item), big ones as
    they are (no copy)."""
    pieces: list[bytes] = []
    run: list[bytes] = [b"["]
    run_size = 1
    for index, item in enumerate(items):
        if index:
            run.append(b",")
            run_size += 1
        if len(item) >= SMALL_PIECE:
            pieces.append(b"".join(run))
            pieces.append(item)
            run, run_size = [], 0
        else:
            run.append(item)
            run_size += len(item)
            if run_size >= SMALL_PIECE * 16:
                pieces.append(b"".join(run))
                run, run_size = [], 0
    run.append(b"]")
    pieces.append(b"".join(run))
    return sum(map(len, pieces)), pieces


def _slices(bodies: list[bytes], responses: list[bytes], max_bytes: int) -> Iterator[slice]:
    """Consecutive runs of requests holding at most `max_bytes` of JSON each (a bigger
    request alone): what one stored row takes. A backlog (after a locked database, say)
    would otherwise become one value over SQLite's 1 GB limit, and be lost whole."""
    start, size = 0, 0
    for index, (body, response) in enumerate(zip(bodies, responses, strict=True)):
        length = len(body) + len(response) + 2
        if index > start and size + length > max_bytes:
            yield slice(start, index)
            start, size = index, 0
        size += length
    if start < len(bodies):
        yield slice(start, len(bodies))


def _insert(
    connection: sqlite3.Connection,
    version: str,
    stamps: list[float],
    ids: list[str],
    bodies: list[bytes],
    responses: list[bytes],
    rows: int,
) -> None:
    """One `prediction_batches` row: the small columns bound, the two big ones streamed
    into zero-filled BLOBs of the right size."""
    inputs_size, inputs = _json_array_pieces(bodies)
    outputs_size, outputs = _json_array_pieces(responses)
    cursor = connection.execute(
        INSERT_SQL,
        (min(stamps), max(stamps), version, len(ids), rows, _dumps(ids), _dumps(stamps),
         inputs_size, outputs_size),
    )  # fmt: skip
    rowid = cursor.lastrowid
    assert rowid is not None
    for column, pieces in (("inputs", inputs), ("outputs", outputs)):
        with connection.blobopen("prediction_batches", column, rowid) as blob:
            for piece in pieces:
                blob.write(piece)


def _check_format(connection: sqlite3.Connection, path: Path, creating: bool) -> None:
    """Refuse a database that holds something other than this version's prediction log."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    tables = {
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
        )
    }
    if version == SCHEMA_VERSION and "prediction_batches" in tables:
        return
    if version == 0 and not tables and creating:
        return
    found = f"format version {version}" if version else "no prediction log format"
    raise LogFormatError(
        f"{str(path)!r} is not a prediction log of format version {SCHEMA_VERSION} "
        f"({found}; tables: {', '.join(sorted(tables)) or 'none'}): move it away or point "
        f"{ENV_VAR} at a new file"
    )


def from_env(environ: Mapping[str, str] | None = None, **options: Any) -> PredictionLogger | None:
    """The logger the environment asks for: `PREDICTION_LOG` path, unset = the default
    path (logs/predictions.sqlite), `off` = no logging (None)."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_VAR)
    if value is not None and value.strip().lower() in DISABLED_VALUES:
        return None
    from mlops_template import pglog

    if value and pglog.is_url(value.strip()):
        return PredictionLogger(value.strip(), **options)
    return PredictionLogger(Path(value) if value else paths.PREDICTION_LOG, **options)


# --------------------------------------------------------------------------- reader


def to_epoch(moment: datetime | float | int | None) -> float | None:
    """Unix seconds; a naive datetime is taken as UTC."""
    if moment is None or isinstance(moment, int | float):
        return None if moment is None else float(moment)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def read_log(
    path: Path | str,
    since: datetime | float | None = None,
    until: datetime | float | None = None,
    features: Sequence[str] | None = None,
    model_version: str | None = None,
    chunk_rows: int = 100_000,
) -> pd.DataFrame:
    """The logged predictions with since <= timestamp < until, oldest first: feature
    columns (`features`, or every key seen) + the `log.*` columns. `path`: a SQLite file
    or a postgresql:// URL (pglog.py)."""
    from mlops_template import pglog

    start, end = to_epoch(since), to_epoch(until)
    if pglog.is_url(path):
        # SQLite (in memory) only splits a batch whose JSON will not parse (_requests)
        return _read_batches(
            pglog.batches(str(path), start, end, model_version),
            sqlite3.connect(":memory:"),
            pglog.redacted(str(path)),
            start,
            end,
            features,
            chunk_rows,
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction log {str(path)!r} does not exist")
    sql, args = window_query(start, end, model_version, "?")

    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        _check_format(connection, path, creating=False)
    except sqlite3.Error as exc:
        connection.close()
        raise ValueError(f"prediction log {str(path)!r} cannot be read: {exc}") from exc
    except BaseException:
        connection.close()
        raise

    def stored() -> Iterator[tuple[str, bytes, bytes, bytes, bytes]]:
        cursor = connection.execute(sql, args)
        while chunk := cursor.fetchmany(64):
            yield from chunk

    return _read_batches(stored(), connection, str(path), start, end, features, chunk_rows)


def window_query(
    start: float | None, end: float | None, model_version: str | None, mark: str
) -> tuple[str, list[Any]]:
    """The stored writes that may hold requests with start <= ts < end (a write straddling
    a bound is read and its requests filtered), oldest first; `mark`: the driver's
    placeholder (sqlite3 `?`, psycopg `%s`)."""
    where, args = [], []
    for clause, value in (
        ("ts_last >=", start),
        ("ts_first <", end),
        ("model_version =", model_version),
    ):
        if value is not None:
            where.append(f"{clause} {mark}")
            args.append(value)
    sql = "SELECT model_version, request_ids, timestamps, inputs, outputs FROM prediction_batches"
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + " ORDER BY id", args


def _read_batches(
    stored: Iterator[tuple[str, bytes, bytes, bytes, bytes]],
    connection: sqlite3.Connection,
    shown: str,
    start: float | None,
    end: float | None,
    features: Sequence[str] | None,
    chunk_rows: int,
) -> pd.DataFrame:
    """The frame of the stored writes (either database); closes `connection`."""
    parts: list[pd.DataFrame] = []
    builder = _FrameBuilder(features)
    unreadable = 0
    try:
        for version, ids, stamps, inputs, outputs in stored:
            requests = _requests(connection, ids, stamps, inputs, outputs)
            for request_id, ts, body, response in requests:
                if (start is not None and ts < start) or (end is not None and ts >= end):
                    continue
                if not builder.add(version, request_id, ts, body, response):
                    unreadable += 1
                    continue
                if builder.rows >= chunk_rows:
                    parts.append(builder.frame())
                    builder = _FrameBuilder(features)
    except sqlite3.Error as exc:
        raise ValueError(f"prediction log {shown!r} cannot be read: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):
            raise ValueError(f"prediction log {shown!r} cannot be read: {exc}") from exc
        raise
    finally:
        connection.close()
    if unreadable:
        logger.warning(
            "prediction log %r: %d request(s) could not be read and were skipped",
            shown,
            unreadable,
        )
    if builder.rows or not parts:
        parts.append(builder.frame())
    frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    # chunks may have seen different keys: features first, then the log's own columns
    meta = [c for c in frame.columns if c.startswith(META_PREFIX)]
    return frame[[c for c in frame.columns if c not in meta] + meta]


def prune(path: Path | str, before: datetime | float) -> tuple[int, int]:
    """Delete the stored batches whose requests all came before `before` (a batch that
    straddles it is kept whole); (batches, predictions) deleted. Safe while a server
    writes: one short transaction, then the WAL is checkpointed."""
    from mlops_template import pglog

    if pglog.is_url(path):
        return pglog.prune(str(path), to_epoch(before))  # type: ignore[arg-type]
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction log {str(path)!r} does not exist")
    cutoff = to_epoch(before)
    connection = sqlite3.connect(path, timeout=30)
    try:
        _check_format(connection, path, creating=False)
        with connection:
            batches, rows = connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(rows), 0) FROM prediction_batches WHERE ts_last < ?",
                (cutoff,),
            ).fetchone()
            connection.execute("DELETE FROM prediction_batches WHERE ts_last < ?", (cutoff,))
        connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
    except sqlite3.Error as exc:
        raise ValueError(f"prediction log {str(path)!r} cannot be pruned: {exc}") from exc
    finally:
        connection.close()
    return int(batches), int(rows)


def _requests(
    connection: sqlite3.Connection,
    ids: bytes,
    stamps: bytes,
    inputs: bytes,
    outputs: bytes,
) -> list[tuple[str, float, Any, Any]]:
    """The requests of one stored batch: (request id, timestamp, body, response), parsed.
    One parse per column; if a body cannot be parsed, SQLite splits the batch and only
    that request is lost (None)."""
    request_ids, timestamps = _loads(ids), _loads(stamps)
    try:
        bodies, responses = _loads(inputs), _loads(outputs)
    except ValueError:
        bodies = _parse_each(connection, inputs, len(request_ids))
        responses = _parse_each(connection, outputs, len(request_ids))
    return list(zip(request_ids, timestamps, bodies, responses, strict=True))


def _parse_each(connection: sqlite3.Connection, text: bytes, count: int) -> list[Any]:
    values: list[Any] = []
    try:
        elements = connection.execute(
            "SELECT value FROM json_each(CAST(? AS TEXT))", (text,)
        ).fetchall()
    except sqlite3.Error:
        return [None] * count
    for (element,) in elements:
        try:
            values.append(_loads(element) if isinstance(element, str) else element)
        except ValueError:
            values.append(None)
    return values if len(values) == count else [None] * count


class _FrameBuilder:
    """Logged requests gathered as they were stored, turned into one DataFrame per chunk
    with C-level transposes: runs of records requests are transposed at once, columns
    requests are taken as they are."""

    def __init__(self, features: Sequence[str] | None) -> None:
        self.fixed = list(features) if features is not None else None
        # feature parts in row order: a list of row mappings, or (columns, rows)
        self.parts: list[list[Mapping[str, Any]] | tuple[Mapping[str, list[Any]], int]] = []
        self.predictions: list[Any] = []
        self.probabilities: list[Any] = []
        self.classes: list[str] | None = None  # of the last request added
        self.segments: list[tuple[list[str], int, int]] = []  # (classes, start, stop)
        self.request_ids: list[str] = []
        self.timestamps: list[float] = []
        self.versions: list[str] = []
        self.counts: list[int] = []
        self.rows = 0

    def add(self, version: str, request_id: str, ts: float, body: Any, response: Any) -> bool:
        """Add one request; False if it cannot be read (nothing added)."""
        try:
            labels = response["predictions"]
            n = len(labels)
            if type(body) is list:
                if len(body) != n:
                    return False
            elif isinstance(body, Mapping):
                if any(len(values) != n for values in body.values()):
                    return False
            else:
                return False
            classes = response.get("classes") or []
            proba = response.get("probabilities")
            if proba is None:
                proba = [[None] * len(classes)] * n
            elif len(proba) != n:
                return False
        except (TypeError, KeyError, AttributeError, ValueError):
            return False
        if type(body) is list:
            last = self.parts[-1] if self.parts else None
            if type(last) is list:
                last.extend(body)
            else:
                self.parts.append(list(body))
        else:
            self.parts.append((body, n))
        if classes != self.classes:
            self.segments.append((classes, self.rows, self.rows))
            self.classes = classes
        self.segments[-1] = (classes, self.segments[-1][1], self.rows + n)
        self.predictions.extend(labels)
        self.probabilities.extend(proba)
        self.request_ids.append(request_id)
        self.timestamps.append(ts)
        self.versions.append(version)
        self.counts.append(n)
        self.rows += n
        return True

    def _names(self) -> list[str]:
        if self.fixed is not None:
            return self.fixed
        names: dict[str, None] = {}
        for part in self.parts:
            keys = chain.from_iterable(part) if type(part) is list else part[0]  # type: ignore[arg-type]
            names.update(dict.fromkeys(map(str, keys)))
        return list(names)

    def _feature_columns(self) -> dict[str, list[Any]]:
        names = self._names()
        columns: dict[str, list[Any]] = {name: [] for name in names}
        for part in self.parts:
            if type(part) is list:
                block = _transpose(part, names)
                for name in names:
                    columns[name].extend(block[name])
            else:
                values, n = part  # type: ignore[misc]
                for name in names:
                    columns[name].extend(values.get(name) or [None] * n)
        return columns

    def frame(self) -> pd.DataFrame:
        columns: dict[str, Any] = self._feature_columns()
        counts = np.asarray(self.counts, dtype=np.int64)
        columns[TIMESTAMP] = pd.to_datetime(
            np.repeat(np.asarray(self.timestamps, dtype=float), counts), unit="s", utc=True
        )
        for name, values in ((REQUEST_ID, self.request_ids), (MODEL_VERSION, self.versions)):
            columns[name] = np.repeat(np.asarray(values, dtype=object), counts)
        starts = np.cumsum(counts) - counts
        columns[ROW] = np.arange(self.rows, dtype=np.int64) - np.repeat(starts, counts)
        columns[PREDICTION] = pd.Series(self.predictions, dtype=object).to_numpy()
        names = list(dict.fromkeys(chain.from_iterable(c for c, _, _ in self.segments)))
        for name in names:
            columns[f"{PROBABILITY_PREFIX}{name}"] = np.full(self.rows, np.nan)
        for classes, begin, stop in self.segments:
            if not classes or stop == begin:
                continue
            block = _float_matrix(self.probabilities[begin:stop], len(classes))
            for j, name in enumerate(classes):
                columns[f"{PROBABILITY_PREFIX}{name}"][begin:stop] = block[:, j]
        return pd.DataFrame(columns, index=pd.RangeIndex(self.rows))


def _transpose(records: list[Mapping[str, Any]], names: list[str]) -> dict[str, list[Any]]:
    """Row mappings as {name: column}; a name a row lacks is missing (None) there."""
    if not names:
        return {}
    try:  # every row has every name (the API's requests): transposed in C
        get = operator.itemgetter(*names)
        rows = map(get, records) if len(names) > 1 else ((get(r),) for r in records)
        return dict(zip(names, map(list, zip(*rows, strict=True)), strict=True))
    except (KeyError, TypeError):
        return {name: [r.get(name) for r in records] for name in names}


def _float_matrix(rows: list[Any], width: int) -> np.ndarray:
    try:
        matrix = np.array(rows, dtype=float)
    except (TypeError, ValueError):  # nulls, ragged rows
        matrix = np.array(
            [
                [math.nan if v is None else float(v) for v in (r or [])][:width]
                + [math.nan] * (width - len(r or []))
                for r in rows
            ],
            dtype=float,
        )
    return matrix.reshape(len(rows), width)


def logged_classes(frame: pd.DataFrame) -> list[str]:
    """The classes whose probabilities the log holds (from the `log.probability:*` columns)."""
    return [
        c.removeprefix(PROBABILITY_PREFIX)
        for c in frame.columns
        if c.startswith(PROBABILITY_PREFIX)
    ]
