"""The prediction log: every prediction the API makes, in SQLite, written off the request path.

Writer: `PredictionLogger.log(...)` (or `record(batch)`, the serving API's
`PredictionLog` hook) only puts the request on an in-memory queue and returns (no I/O, no
JSON on the request path). A background thread takes what is queued
every `flush_interval` seconds, or as soon as `flush_rows` rows wait, and inserts it in
one transaction. The queue is bounded (`max_queue_rows`): when the database cannot keep
up, new requests are dropped and counted, the request is never blocked. Nothing here ever
raises into the caller: a bad row, a full disk, a read-only path or a locked database
becomes a counted, rate-limited warning in the log (`stats()` has the counts).

Database: WAL mode (readers, e.g. the drift check, do not block the writer). Table
`predictions` holds one row per flush (per model version): the rows of every request the
flush took, as columnar JSON. A flush costs one JSON encoding (C speed, orjson) and one
insert, however many requests it holds: the writer shares the serving process's
interpreter, and per-request or per-row Python work would take throughput from serving
(bench/monitor.py measures it).

    id, ts_first, ts_last (unix seconds, UTC), model_version, rows,
    request_ids   JSON [request id per row]
    request_rows  JSON [index of the row in its request, per row]
    timestamps    JSON [unix seconds per row]
    features      JSON {feature: [value per row]}   (null = missing)
    predictions   JSON [class label per row]
    probabilities JSON {class: [probability per row]}

The view `prediction_rows` shows one row per prediction, for SQL by hand:
`SELECT * FROM prediction_rows WHERE ts > unixepoch('now', '-1 day')` gives request_id,
row, ts, model_version, prediction, features (JSON object) and probabilities (JSON object).

Reader: `read_log(path, since, until)` returns one DataFrame for a time window: the
feature columns, plus the log's own columns prefixed `log.` (`log.timestamp`,
`log.request_id`, `log.model_version`, `log.prediction`, `log.probability:<class>`).

The path comes from the environment variable `PREDICTION_LOG` (`from_env`); unset means
`logs/predictions.sqlite`, and `off` turns logging off.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
PREDICTION = f"{META_PREFIX}prediction"
PROBABILITY_PREFIX = f"{META_PREFIX}probability:"

TABLE_SQL = """
CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY,
    ts_first REAL NOT NULL,
    ts_last REAL NOT NULL,
    model_version TEXT NOT NULL,
    rows INTEGER NOT NULL,
    request_ids TEXT NOT NULL,
    request_rows TEXT NOT NULL,
    timestamps TEXT NOT NULL,
    features TEXT NOT NULL,
    predictions TEXT NOT NULL,
    probabilities TEXT NOT NULL
)
"""
INDEX_SQL = "CREATE INDEX IF NOT EXISTS predictions_ts ON predictions (ts_last, ts_first)"
VIEW_SQL = """
CREATE VIEW IF NOT EXISTS prediction_rows AS
SELECT json_extract(r.request_ids, '$[' || p.key || ']') AS request_id,
       json_extract(r.request_rows, '$[' || p.key || ']') AS row,
       json_extract(r.timestamps, '$[' || p.key || ']') AS ts,
       r.model_version,
       p.value AS prediction,
       (SELECT json_group_object(f.key, json_extract(f.value, '$[' || p.key || ']'))
          FROM json_each(r.features) AS f) AS features,
       (SELECT json_group_object(c.key, json_extract(c.value, '$[' || p.key || ']'))
          FROM json_each(r.probabilities) AS c) AS probabilities
FROM predictions AS r, json_each(r.predictions) AS p
"""
INSERT_SQL = (
    "INSERT INTO predictions (ts_first, ts_last, model_version, rows, request_ids, request_rows, "
    "timestamps, features, predictions, probabilities) VALUES (?, ?, ?, ?, "
    # UTF-8 JSON bytes from orjson, stored as TEXT (the JSON functions of the view need text)
    + ", ".join(["CAST(? AS TEXT)"] * 6)
    + ")"
)

try:  # orjson (a dependency of DVC) encodes lists and numpy arrays in C
    import orjson

    def _fast_dumps(value: Any) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)

    _loads = orjson.loads
except ImportError:  # pragma: no cover - exercised only without orjson

    def _fast_dumps(value: Any) -> bytes:
        raise TypeError("no orjson")

    _loads = json.loads


def _dumps(value: Any) -> bytes:
    """UTF-8 JSON; NaN/inf and missing values become null."""
    try:
        return _fast_dumps(value)
    except TypeError:  # numpy scalars, pandas NA, ...: the slow, general path
        return json.dumps(_plain(value), allow_nan=False, separators=(",", ":")).encode()


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray | pd.Series) else list(values)


def _column(values: Any) -> Any:
    """A column ready for JSON, without a Python loop over its values: numeric arrays stay
    arrays and lists stay lists (orjson writes NaN and None as null)."""
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
        columns = {
            name if type(name) is str else str(name): values
            if type(values) is list
            else _column(values)
            for name, values in records.items()
        }
    else:
        records = list(records)
        names = list(dict.fromkeys(name for record in records for name in record))
        columns = {str(n): _column([r.get(n) for r in records]) for n in names}
    for name, values in columns.items():
        if len(values) != rows:
            raise ValueError(f"feature {name!r} has {len(values)} values for {rows} rows")
    return columns


def _probability_columns(
    probabilities: Any, rows: int, classes: Sequence[str] | None
) -> dict[str, Any]:
    """{class: [p per row]} from a rows x classes array or one {class: p} per row."""
    if probabilities is None:
        return {}
    if isinstance(probabilities, Mapping):  # already columns
        return {str(k): _column(v) for k, v in probabilities.items()}
    if len(probabilities) and isinstance(probabilities[0], Mapping):
        names = list(dict.fromkeys(k for row in probabilities for k in row))
        if len(probabilities) != rows:
            raise ValueError(f"{rows} rows but {len(probabilities)} probability rows")
        return {str(n): [row.get(n) for row in probabilities] for n in names}
    matrix = np.asarray(probabilities, dtype=float).reshape(len(probabilities), -1)
    if classes is not None and len(classes) == matrix.shape[1] and matrix.shape[0] == rows:
        return dict(zip(map(str, classes), matrix.T.tolist(), strict=True))
    if matrix.shape[0] != rows:
        raise ValueError(f"{rows} rows but {matrix.shape[0]} probability rows")
    names = (
        [str(c) for c in classes]
        if classes is not None
        else [str(i) for i in range(matrix.shape[1])]
    )
    if len(names) != matrix.shape[1]:
        raise ValueError(f"{matrix.shape[1]} probability columns for classes {names}")
    columns = np.ascontiguousarray(matrix.T)
    return {name: columns[j] for j, name in enumerate(names)}


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


@dataclass(frozen=True)
class LogStats:
    queued: int  # rows waiting to be written
    written: int  # rows committed to the database
    dropped: int  # rows refused because the queue was full
    failed: int  # rows lost to bad input or a database error


@dataclass
class _Entry:
    seq: int
    ts: float
    records: Any  # list of mappings, a DataFrame, or a mapping of columns
    predictions: Any
    probabilities: Any
    version: str
    request_id: str
    rows: int
    classes: Sequence[str] | None


def _extend(
    target: dict[str, list[Any]], values: Mapping[str, list[Any]], n: int, before: int, grow: bool
) -> None:
    """Append n rows of `values` (name -> list) to `target`: names new to `target` start
    with `before` missing values (if `grow`), names missing from `values` get n of them."""
    same_names = target.keys() == values.keys()
    for name, column in values.items():
        if name not in target:
            if not grow:
                continue
            target[name] = [None] * before
        target[name].extend(column if len(column) == n else [None] * n)
    if not same_names:
        for column in target.values():
            if len(column) < before + n:
                column.extend([None] * (before + n - len(column)))


class _Columns:
    """The rows of the requests one flush writes (one model version), as columns."""

    def __init__(self) -> None:
        self.rows = 0
        self.ts_first = math.inf
        self.ts_last = -math.inf
        self.request_ids: list[str] = []
        self.request_rows: list[int] = []
        self.timestamps: list[float] = []
        self.features: dict[str, list[Any]] = {}
        self.predictions: list[Any] = []
        self.probabilities: dict[str, list[Any]] = {}
        self.parts: list[tuple[_Entry, tuple[Any, ...]]] = []  # to isolate a bad request

    def add(
        self,
        entry: _Entry,
        features: dict[str, list[Any]],
        predictions: list[Any],
        probabilities: dict[str, list[Any]],
    ) -> None:
        self.parts.append((entry, (features, predictions, probabilities)))
        n, before = entry.rows, self.rows
        _extend(self.features, features, n, before, grow=True)
        _extend(self.probabilities, probabilities, n, before, grow=True)
        self.predictions.extend(predictions)
        self.request_ids.extend([entry.request_id] * n)
        self.request_rows.extend(range(n))
        self.timestamps.extend([entry.ts] * n)
        self.ts_first = min(self.ts_first, entry.ts)
        self.ts_last = max(self.ts_last, entry.ts)
        self.rows += n

    def row(self, version: str) -> tuple[Any, ...]:
        return (
            self.ts_first,
            self.ts_last,
            version,
            self.rows,
            _dumps(self.request_ids),
            _dumps(self.request_rows),
            _dumps(self.timestamps),
            _dumps(self.features),
            _dumps(self.predictions),
            _dumps(self.probabilities),
        )


class PredictionLogger:
    """Non-blocking SQLite writer for predictions (see the module docstring)."""

    def __init__(
        self,
        path: Path | str,
        *,
        classes: Sequence[str] | None = None,
        flush_rows: int = 512,
        flush_interval: float = 0.2,
        max_queue_rows: int = 100_000,
        busy_timeout: float = 5.0,
        warn_interval: float = 60.0,
    ) -> None:
        self.path = Path(path)
        self.classes = [str(c) for c in classes] if classes is not None else None
        self.flush_rows = flush_rows
        self.flush_interval = flush_interval
        self.max_queue_rows = max_queue_rows
        self.busy_timeout = busy_timeout
        self.warn_interval = warn_interval
        self._cond = threading.Condition()
        self._pending: deque[_Entry] = deque()
        self._pending_rows = 0
        self._seq = 0  # last sequence number handed out
        self._done = 0  # every entry up to this sequence number is finished
        self._flush_wanted = False
        self._closing = False
        self._written = self._dropped = self._failed = 0
        self._last_warning: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self._connection: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)

    # ------------------------------------------------------------------ request path

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
        logger's), or one {class: p} mapping per row. `timestamp`: unix seconds (now).
        """
        try:
            rows = len(predictions)
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
                self._seq += 1
                self._pending.append(
                    _Entry(
                        self._seq,
                        time.time() if timestamp is None else float(timestamp),
                        records,
                        predictions,
                        probabilities,
                        str(version),
                        str(request_id),
                        rows,
                        classes,
                    )
                )
                self._pending_rows += rows
                if self._pending_rows >= self.flush_rows:
                    self._cond.notify_all()
                elif len(self._pending) == 1:
                    self._cond.notify_all()  # start the flush timer
            return True
        except Exception as exc:  # a broken request object must not break serving
            with self._cond:
                self._count_failure("bad_input", 1, f"cannot queue prediction log rows: {exc!r}")
            return False

    def record(self, batch: Any) -> None:
        """The serving API's hook (`mlops_template.serve.PredictionLog`): one served
        request as a `PredictionBatch` (columnar features, rows x classes probabilities)."""
        self.log(
            batch.features,
            batch.predictions,
            batch.probabilities,
            batch.model_version,
            batch.request_id,
            classes=batch.classes,
            timestamp=batch.timestamp,
        )

    # ------------------------------------------------------------------ control

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Write everything queued so far now; True when done within `timeout`."""
        with self._cond:
            target = self._seq
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
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending or self._closing)
                if self._pending and not self._closing:
                    deadline = self._pending[0].ts + self.flush_interval
                    self._cond.wait_for(
                        lambda: (
                            self._pending_rows >= self.flush_rows
                            or self._flush_wanted
                            or self._closing
                        ),
                        max(0.0, deadline - time.time()),
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
                            "writer", sum(e.rows for e in batch), f"prediction log: {exc!r}"
                        )
            with self._cond:
                if batch:
                    self._done = max(self._done, batch[-1].seq)
                self._cond.notify_all()
                if closing and not self._pending:
                    break
        self._close_connection()

    def _write(self, batch: list[_Entry]) -> None:
        groups: dict[str, _Columns] = {}
        for entry in batch:
            try:
                part = self._part(entry)
            except Exception as exc:
                self._drop(entry, exc)
                continue
            groups.setdefault(entry.version, _Columns()).add(entry, *part)
        if not groups:
            return
        rows = []
        for version, group in groups.items():
            try:
                rows.append(group.row(version))
            except (TypeError, ValueError):  # a value JSON cannot hold: find its request
                good = _Columns()
                for entry, part in group.parts:
                    try:
                        _dumps(part)
                    except (TypeError, ValueError) as exc:
                        self._drop(entry, exc)
                        continue
                    good.add(entry, *part)
                groups[version] = good
                if good.rows:
                    rows.append(good.row(version))
        count = sum(group.rows for group in groups.values())
        if not rows:
            return
        try:
            connection = self._connect()
            with connection:
                connection.executemany(INSERT_SQL, rows)
        except (sqlite3.Error, OSError) as exc:
            self._close_connection()
            with self._cond:
                self._count_failure("database", count, f"prediction log {str(self.path)!r}: {exc}")
            return
        with self._cond:
            self._written += count

    def _part(self, entry: _Entry) -> tuple[dict[str, list[Any]], list[Any], dict[str, list[Any]]]:
        """One request's features, predictions and probabilities as checked lists."""
        n = entry.rows
        columns = {
            k: v if type(v) is list else _as_list(v) for k, v in _columns(entry.records, n).items()
        }
        predictions = _as_list(entry.predictions)
        if len(predictions) != n:
            raise ValueError(f"{n} rows but {len(predictions)} predictions")
        if not all(type(p) is str for p in predictions):
            predictions = [str(p) for p in predictions]
        probabilities = _probability_columns(entry.probabilities, n, entry.classes or self.classes)
        return (
            columns,
            predictions,
            {k: v if type(v) is list else _as_list(v) for k, v in probabilities.items()},
        )

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, timeout=self.busy_timeout, check_same_thread=False
            )
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")  # safe with WAL
                with connection:
                    connection.execute(TABLE_SQL)
                    connection.execute(INDEX_SQL)
                    connection.execute(VIEW_SQL)
            except sqlite3.Error:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _close_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(sqlite3.Error):
                self._connection.close()
            self._connection = None

    # ------------------------------------------------------------------ warnings

    def _count_failure(self, kind: str, rows: int, message: str) -> None:
        self._failed += rows
        self._warn(kind, "%s: %d row(s) not logged, %d so far", message, rows, self._failed)

    def _drop(self, entry: _Entry, exc: Exception) -> None:
        """A request that cannot be stored: counted as failed rows, warned about, skipped."""
        with self._cond:
            self._failed += entry.rows
            self._warn(
                "bad_row",
                "prediction log: request %s not logged (%d row(s)): %r",
                entry.request_id,
                entry.rows,
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


def from_env(environ: Mapping[str, str] | None = None, **options: Any) -> PredictionLogger | None:
    """The logger the environment asks for: `PREDICTION_LOG` path, unset = the default
    path (logs/predictions.sqlite), `off` = no logging (None)."""
    environ = os.environ if environ is None else environ
    value = environ.get(ENV_VAR)
    if value is not None and value.strip().lower() in DISABLED_VALUES:
        return None
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
    columns (`features`, or every key seen) + the `log.*` columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prediction log {str(path)!r} does not exist")
    where, args = [], []
    start, end = to_epoch(since), to_epoch(until)
    for clause, value in (("ts_last >= ?", start), ("ts_first < ?", end)):
        if value is not None:
            where.append(clause)
            args.append(value)
    if model_version is not None:
        where.append("model_version = ?")
        args.append(model_version)
    sql = (
        "SELECT model_version, rows, request_ids, timestamps, features, predictions, "
        "probabilities FROM predictions"
    )
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id"

    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    parts: list[pd.DataFrame] = []
    builder = _FrameBuilder(features)
    try:
        cursor = connection.execute(sql, args)
        while chunk := cursor.fetchmany(1000):
            for request in chunk:
                builder.add(*request)
            if builder.rows >= chunk_rows:
                parts.append(builder.frame())
                builder = _FrameBuilder(features)
    except sqlite3.Error as exc:
        raise ValueError(f"prediction log {str(path)!r} cannot be read: {exc}") from exc
    finally:
        connection.close()
    if builder.rows or not parts:
        parts.append(builder.frame())
    frame = parts[0] if len(parts) == 1 else pd.concat(parts, ignore_index=True)
    # a flush spans a little time: keep exactly the rows inside the window
    keep = np.ones(len(frame), dtype=bool)
    seconds = frame[TIMESTAMP].to_numpy(dtype="datetime64[ns]").astype("int64") / 1e9
    if start is not None:
        keep &= seconds >= start
    if end is not None:
        keep &= seconds < end
    if not keep.all():
        frame = frame[keep].reset_index(drop=True)
    # chunks may have seen different keys: features first, then the log's own columns
    meta = [c for c in frame.columns if c.startswith(META_PREFIX)]
    return frame[[c for c in frame.columns if c not in meta] + meta]


class _FrameBuilder:
    """Rows of logged requests gathered as columns, then one DataFrame (per chunk)."""

    def __init__(self, features: Sequence[str] | None) -> None:
        self.fixed = list(features) if features is not None else None
        self.features: dict[str, list[Any]] = {n: [] for n in self.fixed or []}
        self.probabilities: dict[str, list[Any]] = {}
        self.meta: dict[str, list[Any]] = {
            TIMESTAMP: [],
            REQUEST_ID: [],
            MODEL_VERSION: [],
            PREDICTION: [],
        }
        self.rows = 0

    def add(
        self,
        version: str,
        n: int,
        request_ids: str,
        timestamps: str,
        features: str,
        predictions: str,
        probabilities: str,
    ) -> None:
        before = self.rows
        _extend(self.features, _loads(features), n, before, grow=self.fixed is None)
        _extend(self.probabilities, _loads(probabilities), n, before, grow=True)
        for name, text in (
            (PREDICTION, predictions),
            (REQUEST_ID, request_ids),
            (TIMESTAMP, timestamps),
        ):
            values = _loads(text)
            self.meta[name].extend(values if len(values) == n else [None] * n)
        self.meta[MODEL_VERSION].extend([version] * n)
        self.rows += n

    def frame(self) -> pd.DataFrame:
        columns: dict[str, Any] = dict(self.features)
        columns[TIMESTAMP] = pd.to_datetime(
            np.asarray(self.meta[TIMESTAMP], dtype=float), unit="s", utc=True
        )
        for name in (REQUEST_ID, MODEL_VERSION, PREDICTION):
            columns[name] = pd.Series(self.meta[name], dtype=object)
        for name, values in self.probabilities.items():
            columns[f"{PROBABILITY_PREFIX}{name}"] = np.asarray(
                [np.nan if v is None else v for v in values], dtype=float
            )
        return pd.DataFrame(columns, index=pd.RangeIndex(self.rows))


def logged_classes(frame: pd.DataFrame) -> list[str]:
    """The classes whose probabilities the log holds (from the `log.probability:*` columns)."""
    return [
        c.removeprefix(PROBABILITY_PREFIX)
        for c in frame.columns
        if c.startswith(PROBABILITY_PREFIX)
    ]
