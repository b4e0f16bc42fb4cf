"""The prediction log: concurrent writers, exactly-once rows, time windows, and every
failure (bad rows, read-only path, locked database, full queue) a counted warning."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_template import predlog
from mlops_template.predlog import PredictionLogger, read_log

CLASSES = ["benign", "malignant"]


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    """Warnings of the predlog logger (captured directly: the package logger may not
    propagate to the root logger once the CLI has configured it)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    log = logging.getLogger("mlops_template.predlog")
    log.addHandler(handler)
    yield messages
    log.removeHandler(handler)


def _request(n: int, offset: int = 0) -> tuple[list[dict], list[str], np.ndarray]:
    records = [{"x": float(offset + i), "colour": "red" if i % 2 else "blue"} for i in range(n)]
    proba = np.array([[0.25, 0.75]] * n)
    return records, [CLASSES[i % 2] for i in range(n)], proba


def _rows(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT request_id, row FROM prediction_rows").fetchall()


def test_concurrent_writers_log_every_row_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    logger = PredictionLogger(path, classes=CLASSES, flush_rows=64, flush_interval=0.01)
    expected: set[tuple[str, int]] = set()
    lock = threading.Lock()

    def client(worker: int) -> None:
        for k in range(150):
            n = 1 + (worker + k) % 5
            request_id = f"w{worker}-r{k}"
            assert logger.log(*_request(n), version="v1", request_id=request_id)
            with lock:
                expected.update((request_id, row) for row in range(n))

    threads = [threading.Thread(target=client, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    logger.close()

    rows = _rows(path)
    assert len(rows) == len(expected)  # no duplicates ...
    assert set(rows) == expected  # ... and nothing missing
    stats = logger.stats()
    assert (stats.written, stats.dropped, stats.failed, stats.queued) == (len(expected), 0, 0, 0)
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reader_returns_features_and_predictions_for_a_time_window(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    with PredictionLogger(path, classes=CLASSES) as logger:
        logger.log(*_request(3), version="v1", request_id="early")
        logger.flush()
        time.sleep(0.05)
        middle = time.time()
        time.sleep(0.05)
        logger.log(*_request(2, offset=10), version="v2", request_id="late")

    everything = read_log(path)
    assert len(everything) == 5
    assert list(everything.columns[:2]) == ["x", "colour"]
    late = read_log(path, since=middle)
    assert late[predlog.REQUEST_ID].tolist() == ["late", "late"]
    assert late["x"].tolist() == [10.0, 11.0]
    assert late[predlog.MODEL_VERSION].unique().tolist() == ["v2"]
    early = read_log(path, until=datetime.fromtimestamp(middle, tz=UTC))
    assert early[predlog.REQUEST_ID].unique().tolist() == ["early"]
    assert early[predlog.PREDICTION].tolist() == ["benign", "malignant", "benign"]
    assert early[f"{predlog.PROBABILITY_PREFIX}malignant"].tolist() == [0.75] * 3
    assert predlog.logged_classes(early) == CLASSES
    assert str(early[predlog.TIMESTAMP].dtype).startswith("datetime64")
    # a feature list fixes the columns (a key never logged comes back all missing)
    fixed = read_log(path, features=["colour", "x", "size"], model_version="v1")
    assert list(fixed.columns[:3]) == ["colour", "x", "size"] and fixed["size"].isna().all()
    assert len(fixed) == 3
    assert read_log(path, since=time.time() + 60).empty


def test_values_json_cannot_hold_are_stored_as_null(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    records = pd.DataFrame({"x": [np.nan, np.float32(1.5)], "n": np.array([1, 2], dtype=np.int64)})
    with PredictionLogger(path) as logger:
        logger.log(
            records, np.array(["a", "b"]), [{"a": 1.0, "b": 0.0}, {"a": 0.0, "b": 1.0}], "v", "r"
        )
    with sqlite3.connect(path) as connection:
        (stored,) = connection.execute("SELECT request FROM prediction_requests").fetchone()
        rows = connection.execute("SELECT features FROM prediction_rows ORDER BY row").fetchall()
    assert stored == '{"x":[null,1.5],"n":[1,2]}'  # one request, its columns
    assert [json.loads(r[0]) for r in rows] == [{"x": None, "n": 1}, {"x": 1.5, "n": 2}]
    assert read_log(path)["x"].isna().tolist() == [True, False]


def test_bad_rows_are_counted_and_do_not_stop_the_good_ones(
    tmp_path: Path, warnings: list[str]
) -> None:
    path = tmp_path / "log.sqlite"
    with PredictionLogger(path, classes=CLASSES, flush_interval=5) as logger:
        logger.log(*_request(2), version="v1", request_id="good-1")
        records, labels, proba = _request(3)
        logger.log(records, labels[:2], proba, version="v1", request_id="short")  # 3 vs 2
        logger.log([{"x": object()}], ["benign"], [[0.5, 0.5]], version="v1", request_id="odd")
        assert logger.log([{"x": 1.0}], None, None, version="v1", request_id="none") is False  # type: ignore[arg-type]
        logger.log(*_request(1), version="v1", request_id="good-2")
        assert logger.flush()
        stats = logger.stats()
    assert {r[0] for r in _rows(path)} == {"good-1", "good-2"}
    assert (stats.written, stats.failed) == (3, 2 + 1 + 1)  # a request counts its predictions
    assert any("short" in w for w in warnings)


@pytest.mark.parametrize("where", ["proc", "under_a_file"])
def test_a_read_only_path_degrades_to_a_warning(
    tmp_path: Path, warnings: list[str], where: str
) -> None:
    if where == "proc":
        if not Path("/proc").is_dir():
            pytest.skip("no /proc (a read-only file system even for root)")
        path = Path("/proc/predictions.sqlite")
    else:
        (tmp_path / "a_file").write_text("not a directory")
        path = tmp_path / "a_file" / "log.sqlite"
    logger = PredictionLogger(path, classes=CLASSES, flush_interval=0.01)
    for k in range(3):
        assert logger.log(*_request(2), version="v1", request_id=f"r{k}") is True
    assert logger.flush()
    logger.log(*_request(1), version="v1", request_id="after")  # keeps accepting
    logger.close()
    stats = logger.stats()
    assert (stats.written, stats.failed) == (0, 7)
    assert warnings and "not logged" in warnings[0]
    assert len(warnings) < 7  # rate-limited, not one per request


def test_a_locked_database_is_survived_and_logging_resumes(
    tmp_path: Path, warnings: list[str]
) -> None:
    path = tmp_path / "log.sqlite"
    logger = PredictionLogger(path, classes=CLASSES, flush_interval=0.01, busy_timeout=0.2)
    logger.log(*_request(1), version="v1", request_id="before")
    assert logger.flush()
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    started = time.perf_counter()
    for k in range(20):  # the writer is stuck on the lock; callers are not
        logger.log(*_request(1), version="v1", request_id=f"locked-{k}")
    enqueue_seconds = time.perf_counter() - started
    assert logger.flush()
    blocker.execute("ROLLBACK")
    blocker.close()
    logger.log(*_request(1), version="v1", request_id="after")
    logger.close()

    stats = logger.stats()
    assert stats.failed >= 1 and stats.written + stats.failed == 22
    assert ("after", 0) in _rows(path) and ("before", 0) in _rows(path)
    assert any("locked" in w for w in warnings)
    assert enqueue_seconds < stats.failed * 0.2 + 0.5  # log() never waited on the lock


def test_a_full_queue_drops_and_counts_instead_of_blocking(
    tmp_path: Path, warnings: list[str]
) -> None:
    path = tmp_path / "log.sqlite"
    # nothing is written until close(): the queue holds at most 10 rows
    logger = PredictionLogger(path, flush_rows=1000, flush_interval=60, max_queue_rows=10)
    accepted = [logger.log(*_request(4), version="v1", request_id=f"r{k}") for k in range(4)]
    assert accepted == [True, True, False, False]
    assert logger.stats().dropped == 8 and logger.stats().queued == 8
    assert len([w for w in warnings if "queue full" in w]) == 1  # rate-limited
    logger.close()
    assert logger.stats().written == 8
    assert len(_rows(path)) == 8


def test_log_after_close_is_refused_quietly(tmp_path: Path) -> None:
    logger = PredictionLogger(tmp_path / "log.sqlite")
    logger.close()
    logger.close()  # idempotent
    assert logger.log(*_request(1), version="v1", request_id="late") is False
    assert logger.stats().failed == 1


def test_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert predlog.from_env({"PREDICTION_LOG": "off"}) is None
    assert predlog.from_env({"PREDICTION_LOG": ""}) is None
    logger = predlog.from_env({"PREDICTION_LOG": str(tmp_path / "p.sqlite")})
    assert logger is not None and logger.path == tmp_path / "p.sqlite"
    logger.close()
    monkeypatch.chdir(tmp_path)
    default = predlog.from_env({})
    assert default is not None and default.path == Path("logs/predictions.sqlite")
    default.close()


def test_reading_a_missing_log_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.sqlite"):
        read_log(tmp_path / "nope.sqlite")


def test_record_takes_the_serving_apis_prediction_batch(tmp_path: Path) -> None:
    from mlops_template.serve import PredictionBatch

    path = tmp_path / "log.sqlite"
    batch = PredictionBatch(
        request_id="req-1",
        timestamp=1_700_000_000.25,
        model_version="v1.2.0",
        features={"x": [1.0, None], "colour": ["red", "blue"]},  # columnar, None = missing
        classes=("benign", "malignant"),
        predictions=["malignant", "benign"],
        probabilities=np.array([[0.1, 0.9], [0.8, 0.2]]),
    )
    with PredictionLogger(path) as logger:  # no classes given: the batch names them
        logger.record(batch)
        bad = batch._replace(request_id="bad", predictions=["benign"])
        logger.record(bad)  # 2 feature rows, 1 prediction: counted, not raised
    frame = read_log(path)
    assert frame["x"].tolist()[0] == 1.0 and pd.isna(frame["x"].tolist()[1])
    assert frame["colour"].tolist() == ["red", "blue"]
    assert frame[predlog.TIMESTAMP].iloc[0] == pd.Timestamp(1_700_000_000.25, unit="s", tz="UTC")
    assert frame[f"{predlog.PROBABILITY_PREFIX}malignant"].tolist() == [0.9, 0.2]
    assert frame[predlog.MODEL_VERSION].unique().tolist() == ["v1.2.0"]
    assert logger.stats().failed == 1 and logger.stats().written == 2


def _served(request_id: str, body: Any, predictions: list[str], ts: float) -> Any:
    """A request as the serving API hands it over: its body and response as JSON bytes."""
    from mlops_template.serve import PredictionBatch

    proba = [[0.3, 0.7] if p == "malignant" else [0.6, 0.4] for p in predictions]
    response = {"request_id": request_id, "classes": CLASSES, "predictions": predictions,
                "probabilities": proba, "unknown_categories": []}  # fmt: skip
    return PredictionBatch(
        request_id, ts, "v3", {}, tuple(CLASSES), predictions, np.array(proba),
        json.dumps(body).encode(), json.dumps(response).encode(),
    )  # fmt: skip


def test_the_apis_request_and_response_bodies_are_stored_as_served(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    records = [{"x": 1.5, "colour": "red"}, {"x": None, "colour": "blue"}]
    columns = {"x": [7.0], "colour": ["green"]}
    with PredictionLogger(path) as logger:
        logger.record(_served("rec", records, ["malignant", "benign"], 100.0))
        logger.record(_served("col", columns, ["benign"], 101.0))
    with sqlite3.connect(path) as connection:
        stored = connection.execute(
            "SELECT request_id, ts, model_version, request, response FROM prediction_requests"
        ).fetchall()
        rows = connection.execute(
            "SELECT request_id, row, prediction, features, probabilities FROM prediction_rows"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in stored] == [("rec", 100.0, "v3"), ("col", 101.0, "v3")]
    assert json.loads(stored[0][3]) == records and json.loads(stored[1][3]) == columns
    assert json.loads(stored[0][4])["predictions"] == ["malignant", "benign"]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("rec", 0, "malignant"), ("rec", 1, "benign"), ("col", 0, "benign")
    ]  # fmt: skip
    assert [json.loads(r[3]) for r in rows] == [*records, {"x": 7.0, "colour": "green"}]
    assert json.loads(rows[2][4]) == {"benign": 0.6, "malignant": 0.4}

    frame = read_log(path)
    assert frame["x"].tolist()[0] == 1.5 and pd.isna(frame["x"].tolist()[1])
    assert frame["colour"].tolist() == ["red", "blue", "green"]
    assert frame[predlog.REQUEST_ID].tolist() == ["rec", "rec", "col"]
    assert frame[f"{predlog.PROBABILITY_PREFIX}malignant"].tolist() == [0.7, 0.4, 0.4]
    assert read_log(path, since=100.5)[predlog.REQUEST_ID].tolist() == ["col"]


def test_a_request_that_cannot_be_parsed_costs_only_itself(
    tmp_path: Path, warnings: list[str]
) -> None:
    path = tmp_path / "log.sqlite"
    good = _served("good", [{"x": 1.0}], ["benign"], 100.0)
    with PredictionLogger(path, flush_interval=5) as logger:
        logger.record(good)
        # a lone surrogate: valid JSON syntax that SQLite splits but orjson refuses
        logger.record(good._replace(request_id="odd", request_body=b'[{"x": "\\ud800"}]'))
        logger.record(good._replace(request_id="after", timestamp=101.0))
    frame = read_log(path)
    assert frame[predlog.REQUEST_ID].tolist() == ["good", "after"]
    assert any("1 request(s) could not be read" in w for w in warnings)


def test_a_backlog_is_stored_in_rows_of_bounded_size(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    # nothing written until close(): 60 requests pile up, as behind a locked database
    with PredictionLogger(
        path, flush_interval=60, flush_rows=10**6, max_batch_bytes=4000
    ) as logger:
        for k in range(60):
            logger.record(
                _served(f"r{k}", [{"x": float(k)}] * (1 + k % 3), ["benign"] * (1 + k % 3), k)
            )
        big = [{"x": 1.0, "pad": "p" * 5000}]  # alone over the limit: a row of its own
        logger.record(_served("big", big, ["benign"], 61.0))
    with sqlite3.connect(path) as connection:
        sizes = connection.execute(
            "SELECT requests, length(inputs) + length(outputs) FROM prediction_batches ORDER BY id"
        ).fetchall()
    assert len(sizes) >= 4 and sum(n for n, _ in sizes) == 61  # ~11 kB of JSON: 3 rows + big
    assert all(size <= 4000 + 2 for n, size in sizes[:-1]) and sizes[-1][0] == 1
    frame = read_log(path)
    assert frame[predlog.REQUEST_ID].drop_duplicates().tolist() == [
        *(f"r{k}" for k in range(60)),
        "big",
    ]
    assert len(frame) == sum(1 + k % 3 for k in range(60)) + 1


def test_a_file_that_is_not_this_log_format_is_named_not_overwritten(
    tmp_path: Path, warnings: list[str]
) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE predictions (id INTEGER PRIMARY KEY, features TEXT)")
    with PredictionLogger(path, classes=CLASSES, flush_interval=0.01) as logger:
        logger.log(*_request(2), version="v1", request_id="r")
        assert logger.flush()
        assert logger.stats().failed == 2
    assert any("old.sqlite" in w and "not a prediction log" in w for w in warnings)
    with pytest.raises(ValueError, match=r"old\.sqlite.*not a prediction log.*predictions"):
        read_log(path)
    with sqlite3.connect(path) as connection:  # untouched
        assert [r[0] for r in connection.execute("SELECT name FROM sqlite_master")] == [
            "predictions"
        ]


def test_the_window_splits_rows_that_were_written_in_the_same_flush(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    with PredictionLogger(path, classes=CLASSES, flush_interval=60) as logger:
        for k, ts in enumerate([100.0, 200.0, 300.0]):
            logger.log(*_request(2, offset=10 * k), version="v1", request_id=f"r{k}", timestamp=ts)
    with sqlite3.connect(path) as connection:
        assert connection.execute(
            "SELECT COUNT(*), SUM(rows) FROM prediction_batches"
        ).fetchone() == (
            1,
            6,
        )
    middle = read_log(path, since=150, until=250)
    assert middle[predlog.REQUEST_ID].tolist() == ["r1", "r1"]
    assert middle["x"].tolist() == [10.0, 11.0]
    assert read_log(path, since=300)[predlog.REQUEST_ID].tolist() == ["r2", "r2"]
    assert len(read_log(path, until=100)) == 0


# --- with the real serving API (uvicorn, the model of a built project) ------------------


def _serve_with_log(project: Path, log_path: str, out: Path) -> Any:
    import subprocess
    import sys

    import httpx
    from tests.helpers import tool_env
    from tests.serving.conftest import Server, free_port, stop_server

    port = free_port()
    with out.open("wb") as sink:
        # the real command: `serve` builds the log from PREDICTION_LOG (app_from_env)
        process = subprocess.Popen(
            [sys.executable, "-m", "mlops_template", "serve", "--port", str(port)],
            cwd=project,
            env=tool_env(PREDICTION_LOG=log_path),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", process, out)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, server.output()
        try:
            if httpx.get(f"{server.url}/health", timeout=5).status_code == 200:
                return server, stop_server
        except httpx.TransportError:
            time.sleep(0.05)
    stop_server(server)
    raise AssertionError(server.output())


def _requests(built_project: Path) -> list[tuple[str, list[dict]]]:
    from tests.serving.conftest import records

    schema = json.loads((built_project / "data/schema.json").read_text())
    rows = records(pd.read_parquet(built_project / "data/split/test.parquet"), schema)
    return [(f"req-{k}", rows[k % 100 : k % 100 + 1 + k % 3]) for k in range(160)]


@pytest.mark.slow
def test_every_request_to_the_api_is_logged_exactly_once(
    built_project: Path, tmp_path: Path
) -> None:
    import httpx

    log = tmp_path / "predictions.sqlite"
    server, stop = _serve_with_log(built_project, str(log), tmp_path / "server.log")
    work = _requests(built_project)
    statuses: list[int] = []
    answers: dict[str, tuple[Any, str]] = {}  # request id -> (body sent, response received)
    try:

        def client(part: list[tuple[str, list[dict]]]) -> None:
            with httpx.Client(base_url=server.url, timeout=30) as http:
                for k, (request_id, body) in enumerate(part):
                    sent: Any = body
                    route = "/predict"
                    if k % 4 == 3:  # every fourth request through the columnar endpoint
                        sent = {name: [row[name] for row in body] for name in body[0]}
                        route = "/predict/columns"
                    r = http.post(route, json=sent, headers={"x-request-id": request_id})
                    statuses.append(r.status_code)
                    answers[request_id] = (sent, r.text)

        threads = [threading.Thread(target=client, args=(work[i::8],)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        stop(server)  # SIGTERM: the app closes the log, which flushes it
    assert statuses == [200] * len(work)
    expected = {(request_id, row) for request_id, body in work for row in range(len(body))}
    logged = _rows(log)
    assert len(logged) == len(expected) and set(logged) == expected
    # stored as served: the body each client sent, the response it received, byte for byte
    with sqlite3.connect(log) as connection:
        stored = connection.execute(
            "SELECT request_id, request, response FROM prediction_requests"
        ).fetchall()
    assert len(stored) == len(work)
    for request_id, request, response in stored:
        sent, received = answers[request_id]
        assert json.loads(request) == sent and response == received, request_id
    frame = read_log(log)
    assert frame[predlog.MODEL_VERSION].unique().tolist() == ["dev"]
    assert frame[predlog.PREDICTION].isin(["benign", "malignant"]).all()


@pytest.mark.slow
def test_a_read_only_log_path_does_not_fail_requests(built_project: Path, tmp_path: Path) -> None:
    import httpx

    if not Path("/proc").is_dir():
        pytest.skip("no /proc (a read-only file system even for root)")
    server, stop = _serve_with_log(
        built_project, "/proc/predictions.sqlite", tmp_path / "server.log"
    )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            answers = [
                http.post("/predict", json=body).status_code
                for _, body in _requests(built_project)[:40]
            ]
        time.sleep(0.5)  # a flush attempt (and its warning) happens meanwhile
    finally:
        stop(server)
    assert answers == [200] * 40
    assert "not logged" in server.output()


def test_the_writer_thread_yields_the_cpu_to_serving(tmp_path: Path) -> None:
    task = Path("/proc/self/task")
    if not task.is_dir():
        pytest.skip("no /proc: thread priorities are not visible here")

    def nice(thread_id: int | None) -> int:
        fields = (task / str(thread_id) / "stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[16])  # field 19 of proc(5); 3 fields precede the split point

    if nice(threading.get_native_id()) != 0:
        pytest.skip("the tests run at a lowered priority already")
    with PredictionLogger(tmp_path / "log.sqlite") as logger:
        deadline = time.monotonic() + 5
        while nice(logger._thread.native_id) == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the thread sets its own priority as it starts
        assert nice(logger._thread.native_id) == 10
        assert nice(threading.get_native_id()) == 0  # the caller's thread is left alone
    with PredictionLogger(tmp_path / "log2.sqlite", writer_nice=0) as logger:
        logger.log(*_request(1), version="v1", request_id="r")
        assert logger.flush()
        assert nice(logger._thread.native_id) == 0


def test_prune_deletes_old_predictions_and_the_command_names_what_it_did(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    path = tmp_path / "log.sqlite"
    now = time.time()
    with PredictionLogger(path, classes=CLASSES, flush_interval=60) as logger:
        for request_id, age_days in (("old", 40), ("recent", 1)):
            logger.log(*_request(2), version="v1", request_id=request_id,
                       timestamp=now - age_days * 86400)  # fmt: skip
            logger.flush()
    assert predlog.prune(path, now - 30 * 86400) == (1, 2)
    assert read_log(path)[predlog.REQUEST_ID].tolist() == ["recent", "recent"]
    assert predlog.prune(path, now - 30 * 86400) == (0, 0)  # nothing left that old

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mlops_template", "monitor", "prune", *args],
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    done = command("--log", str(path), "--older-than", "12h")
    assert done.returncode == 0, done.stderr
    assert "deleted 2 prediction(s)" in done.stderr + done.stdout
    assert len(read_log(path)) == 0
    bad = command("--log", str(path), "--older-than", "soon")
    assert bad.returncode == 2 and "--older-than 'soon'" in bad.stderr + bad.stdout
    missing = command("--log", str(tmp_path / "nope.sqlite"), "--older-than", "1d")
    assert missing.returncode == 2 and "nope.sqlite" in missing.stderr + missing.stdout
