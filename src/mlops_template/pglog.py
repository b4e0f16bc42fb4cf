"""The prediction log in PostgreSQL: `PREDICTION_LOG=postgresql://user@host/db`.

The same table as the SQLite log (predlog.py), so the reader, the drift check and the
live-performance check work on either: one row per write, with the request ids,
timestamps, request bodies and responses of that write as JSON arrays (BYTEA here).
Several API processes (uvicorn workers, replicas) write to one database: each flush is
one transaction of plain INSERTs, so concurrent writers never wait on each other, and a
row is committed once or not at all. The delayed labels (performance.py) live in the
`labels` table of the same database.

URLs: `postgresql://user:password@host:5432/db`, or a unix socket with
`postgresql://user@/db?host=/run/postgresql` (libpq's forms; psycopg's binary package
brings libpq). The tables are created on first use, under an advisory lock so that two
processes starting together do not race.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

SCHEMES = ("postgresql://", "postgres://")
DDL_LOCK = 0x6D6C6F7073  # any constant: serialises the CREATE TABLEs of starting writers

TABLES_SQL = (
    """CREATE TABLE IF NOT EXISTS prediction_batches (
        id BIGSERIAL PRIMARY KEY,
        ts_first DOUBLE PRECISION NOT NULL,
        ts_last DOUBLE PRECISION NOT NULL,
        model_version TEXT NOT NULL,
        requests INTEGER NOT NULL,
        rows INTEGER NOT NULL,
        request_ids BYTEA NOT NULL,
        timestamps BYTEA NOT NULL,
        inputs BYTEA NOT NULL,
        outputs BYTEA NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS prediction_batches_ts ON prediction_batches (ts_last, ts_first)",
    """CREATE TABLE IF NOT EXISTS labels (
        request_id TEXT NOT NULL,
        "row" INTEGER NOT NULL,
        label TEXT NOT NULL,
        received DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (request_id, "row")
    )""",
)
INSERT_SQL = (
    "INSERT INTO prediction_batches (ts_first, ts_last, model_version, requests, rows, "
    "request_ids, timestamps, inputs, outputs) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)


def is_url(source: object) -> bool:
    return isinstance(source, str) and source.startswith(SCHEMES)


def connect(url: str, create: bool = True) -> Any:
    """A connection; `create`: make the tables if they are missing.

    Autocommit, with every write in an explicit `connection.transaction()` block: without
    autocommit a first SELECT opens an implicit transaction and the block inside it is a
    mere savepoint, rolled back when the connection closes."""
    import psycopg

    connection = psycopg.connect(url, connect_timeout=10, autocommit=True)
    if create:
        try:
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (DDL_LOCK,))
                for statement in TABLES_SQL:
                    connection.execute(statement)
        except Exception:
            connection.close()
            raise
    return connection


def insert(
    connection: Any,
    version: str,
    stamps: list[float],
    ids: bytes,
    timestamps: bytes,
    bodies: list[bytes],
    responses: list[bytes],
    rows: int,
) -> None:
    """One `prediction_batches` row (the caller holds the transaction)."""
    connection.execute(
        INSERT_SQL,
        (
            min(stamps),
            max(stamps),
            version,
            len(bodies),
            rows,
            ids,
            timestamps,
            b"[" + b",".join(bodies) + b"]",
            b"[" + b",".join(responses) + b"]",
        ),
    )


def batches(
    url: str, start: float | None, end: float | None, model_version: str | None
) -> Iterator[tuple[str, bytes, bytes, bytes, bytes]]:
    """The stored writes that may hold requests with start <= ts < end, oldest first:
    (model_version, request_ids, timestamps, inputs, outputs) as bytes."""
    from mlops_template.predlog import window_query

    sql, args = window_query(start, end, model_version, "%s")
    connection = connect(url, create=False)
    try:
        _require_log(connection, url)
        # a named (server-side) cursor: a big log streams instead of loading at once
        with connection.transaction(), connection.cursor(name="prediction_log") as cursor:
            cursor.execute(sql, args)
            while chunk := cursor.fetchmany(64):
                for version, ids, stamps, inputs, outputs in chunk:
                    yield version, bytes(ids), bytes(stamps), bytes(inputs), bytes(outputs)
    finally:
        connection.close()


def _require_log(connection: Any, url: str) -> None:
    found = connection.execute("SELECT to_regclass('prediction_batches')").fetchone()[0]
    if found is None:
        raise FileNotFoundError(
            f"prediction log {redacted(url)!r}: the database has no prediction_batches table "
            "(nothing was logged to it yet)"
        )


def prune(url: str, cutoff: float) -> tuple[int, int]:
    connection = connect(url, create=False)
    try:
        _require_log(connection, url)
        with connection.transaction():
            batches, rows = connection.execute(
                "SELECT COUNT(*), COALESCE(SUM(rows), 0) FROM prediction_batches "
                "WHERE ts_last < %s",
                (cutoff,),
            ).fetchone()
            connection.execute("DELETE FROM prediction_batches WHERE ts_last < %s", (cutoff,))
    finally:
        connection.close()
    return int(batches), int(rows)


def store_labels(
    url: str, rows: Sequence[tuple[str, int, str]], received: float
) -> tuple[int, int, list[tuple[str, int, str, str]]]:
    """As performance.store_labels: (new, duplicates, conflicts), one transaction."""
    connection = connect(url)
    try:
        with connection.transaction():
            connection.execute(
                'CREATE TEMP TABLE incoming (request_id TEXT, "row" INTEGER, label TEXT, '
                'PRIMARY KEY (request_id, "row")) ON COMMIT DROP'
            )
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO incoming VALUES (%s, %s, %s) ON CONFLICT DO NOTHING", rows
                )
            conflicts = connection.execute(
                'SELECT i.request_id, i."row", l.label, i.label FROM incoming AS i '
                'JOIN labels AS l USING (request_id, "row") WHERE l.label != i.label '
                'ORDER BY i.request_id, i."row"'
            ).fetchall()
            (duplicates,) = connection.execute(
                "SELECT COUNT(*) FROM incoming AS i JOIN labels AS l "
                'USING (request_id, "row") WHERE l.label = i.label'
            ).fetchone()
            new = connection.execute(
                'INSERT INTO labels (request_id, "row", label, received) '
                'SELECT request_id, "row", label, %s FROM incoming '
                'ON CONFLICT (request_id, "row") DO NOTHING',
                (received,),
            ).rowcount
    finally:
        connection.close()
    return int(new), int(duplicates), [(r, int(n), a, b) for r, n, a, b in conflicts]


def read_labels(url: str) -> list[tuple[str, int, str]]:
    connection = connect(url, create=False)
    try:
        exists = connection.execute("SELECT to_regclass('labels')").fetchone()[0]
        if exists is None:
            return []
        return connection.execute('SELECT request_id, "row", label FROM labels').fetchall()
    finally:
        connection.close()


def redacted(url: str) -> str:
    """The URL without its password (for messages and reports)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}@{netloc[-1]}"))
