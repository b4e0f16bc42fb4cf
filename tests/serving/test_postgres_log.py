"""The prediction log in PostgreSQL (PREDICTION_LOG=postgresql://...), on a real server
started from Debian's package (tests/postgres.py): two API processes writing to one
database concurrently log every request exactly once, and the reader, the pruning, the
labels and the drift check give what they give on SQLite for the same requests."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from tests import postgres
from tests.helpers import run
from tests.serving.conftest import (
    Server,
    copy_served_files,
    records,
    start_server,
    stop_server,
)

from mlops_template import predlog
from mlops_template.performance import LABEL, read_labels, store_labels

# slow: a real PostgreSQL server and two API processes
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(postgres.why_not() is not None, reason=str(postgres.why_not())),
]

REQUESTS_PER_CLIENT = 40
CLIENTS_PER_SERVER = 3
ROWS_PER_REQUEST = 5


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with postgres.server() as url:
        yield url


@pytest.fixture
def database(server: str) -> str:
    return postgres.new_database(server)


def log_the_same(logger: predlog.PredictionLogger) -> None:
    """Requests as the API and `log()` callers send them: records and columns, two
    versions, a regression-like answer without classes, a NaN."""
    assert logger.log(
        [{"x": 1.0, "c": "a"}, {"x": None, "c": "b"}], ["yes", "no"],
        [[0.2, 0.8], [0.7, 0.3]], "v1.0.0", "r1", classes=["no", "yes"], timestamp=100,
    )  # fmt: skip
    assert logger.log(
        {"x": [3.0, float("nan")], "c": ["a", "a"]}, ["no", "no"],
        [[0.6, 0.4], [0.9, 0.1]], "v1.0.0", "r2", classes=["no", "yes"], timestamp=200,
    )  # fmt: skip
    assert logger.log(
        [{"x": 5.0, "c": "b"}], ["yes"], [[0.1, 0.9]], "v1.1.0", "r3",
        classes=["no", "yes"], timestamp=300,
    )  # fmt: skip
    assert logger.log([{"x": 7.0, "c": "c"}], [12.5], None, "v2.0.0", "r4", timestamp=400)


def test_the_reader_labels_and_pruning_give_what_sqlite_gives(
    database: str, tmp_path: Path
) -> None:
    sqlite = tmp_path / "predictions.sqlite"
    for target in (database, sqlite):
        with predlog.PredictionLogger(target) as logger:
            log_the_same(logger)
        assert logger.stats().written == 6 and logger.stats().failed == 0
    for window in ({}, {"since": 150}, {"until": 300}, {"model_version": "v1.0.0"}):
        from_postgres = predlog.read_log(database, **window)
        from_sqlite = predlog.read_log(sqlite, **window)
        assert len(from_sqlite), window
        pd.testing.assert_frame_equal(from_postgres, from_sqlite)

    labels = pd.DataFrame({"request_id": ["r1", "r1", "r3"], "row": [0, 1, 0], LABEL: ["yes"] * 3})
    changed = labels.assign(**{LABEL: ["yes", "no", "yes"]})
    for target in (database, sqlite):
        assert store_labels(target, labels, now=1.0).new == 3
        again = store_labels(target, changed, now=2.0)
        assert (again.new, again.duplicates, again.conflicts) == (0, 2, [("r1", 1, "yes", "no")])
    pd.testing.assert_frame_equal(
        read_labels(database, "classification").sort_values(["request_id", "row"]),
        read_labels(sqlite, "classification").sort_values(["request_id", "row"]),
    )

    # one stored write per version and flush: v1.0.0 (r1, r2) ends before 250
    assert predlog.prune(database, 250) == predlog.prune(sqlite, 250) == (1, 4)
    pd.testing.assert_frame_equal(predlog.read_log(database), predlog.read_log(sqlite))


def test_a_missing_table_or_server_is_named_without_the_password(server: str) -> None:
    empty = postgres.new_database(server)
    with pytest.raises(FileNotFoundError, match="has no prediction_batches table"):
        predlog.read_log(empty)
    unreachable = "postgresql://reader:s3cret@/nowhere?host=/nonexistent"
    with pytest.raises(ValueError, match="cannot be read") as error:
        predlog.read_log(unreachable)
    assert "s3cret" not in str(error.value)
    # the writer degrades to counted failures, never an exception into the caller
    with predlog.PredictionLogger(unreachable, warn_interval=0) as logger:
        assert logger.log([{"x": 1.0}], ["a"], [[1.0]], "v1", "r", classes=["a"])
    assert logger.stats().failed == 1 and logger.stats().written == 0


@pytest.fixture
def two_servers(built_project: Path, database: str, tmp_path: Path) -> Iterator[list[Server]]:
    servers = []
    try:
        for number in range(2):
            root = copy_served_files(built_project, tmp_path / f"server{number}")
            servers.append(
                start_server(
                    root,
                    tmp_path / f"server{number}.log",
                    PREDICTION_LOG=database,
                    MODEL_VERSION="v1.0.0",
                )
            )
        yield servers
    finally:
        for s in servers:
            stop_server(s)  # SIGTERM: the logger flushes what is queued


def test_two_api_processes_log_every_request_exactly_once(
    built_project: Path, database: str, two_servers: list[Server]
) -> None:
    schema = json.loads((built_project / "data" / "schema.json").read_text())
    rows = records(pd.read_parquet(built_project / "data" / "split" / "test.parquet"), schema)
    sent: dict[str, list[str]] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def client(url: str, number: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as http:
            for i in range(REQUESTS_PER_CLIENT):
                request_id = f"{number}-{i}-{uuid.uuid4().hex[:8]}"
                start = (number * REQUESTS_PER_CLIENT + i) % (len(rows) - ROWS_PER_REQUEST)
                answer = http.post(
                    "/predict",
                    json=rows[start : start + ROWS_PER_REQUEST],
                    headers={"x-request-id": request_id},
                )
                with lock:
                    if answer.status_code != 200:
                        errors.append(answer.text)
                    else:
                        sent[request_id] = answer.json()["predictions"]

    threads = [
        threading.Thread(target=client, args=(url, n * 2 + k))
        for n, url in enumerate(s.url for s in two_servers)
        for k in range(CLIENTS_PER_SERVER)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    expected = 2 * CLIENTS_PER_SERVER * REQUESTS_PER_CLIENT
    assert len(sent) == expected

    # what is still queued is written on shutdown (the writer yields the CPU to serving)
    for s in two_servers:
        stop_server(s)
        assert "not logged" not in s.output()
    log = predlog.read_log(database)
    per_request = log.groupby(predlog.REQUEST_ID)
    assert per_request.size().to_dict() == dict.fromkeys(sent, ROWS_PER_REQUEST)
    for request_id, frame in per_request:
        assert frame[predlog.PREDICTION].tolist() == sent[str(request_id)]
        assert frame[predlog.ROW].tolist() == list(range(ROWS_PER_REQUEST))
    assert set(log[predlog.MODEL_VERSION]) == {"v1.0.0"}

    # the drift check reads the database where it is
    out = Path(str(built_project)).parent / f"monitor-{uuid.uuid4().hex[:6]}"
    result = run(
        ["python", "-m", "mlops_template", "monitor", "check", "--current", database,
         "--out", str(out), "--no-fail-on-drift"],
        built_project,
        check=False,
        GITHUB_OUTPUT="",
        GITHUB_STEP_SUMMARY="",
        MONITOR_REFERENCE_STAGE="",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "drift.json").read_text())
    assert report["rows"]["current"] == expected * ROWS_PER_REQUEST
    assert report["model_versions"] == {"v1.0.0": expected * ROWS_PER_REQUEST}
