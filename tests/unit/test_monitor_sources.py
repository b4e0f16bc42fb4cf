"""`monitor check --current SOURCE` with a database URL: sqlite:///relative/path and
sqlite:////absolute/path (SQLAlchemy's convention), and the errors a wrong one gives.

The command runs for real (a subprocess) in a minimal project: params.yaml, the schema and
the training split of the built-in data, no model (so no prediction drift, no DVC)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import FIXTURE_PARAMS, run

from mlops_template.commands.monitor import (
    MonitorError,
    _dvc_tracked,
    local_source,
    redact,
    sqlite_path,
)

LOGGED = 240  # rows written to the prediction log (above monitor.min_rows: a verdict)
SECRET = "hunter2-not-for-logs"


# --- resolving the URL -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///predictions.sqlite", "predictions.sqlite"),
        ("sqlite:///logs/predictions.sqlite", "logs/predictions.sqlite"),
        ("sqlite:////mnt/logs/predictions.sqlite", "/mnt/logs/predictions.sqlite"),
        ("sqlite:////mnt/logs/predictions.sqlite?mode=ro", "/mnt/logs/predictions.sqlite"),
    ],
)
def test_sqlite_url_is_a_relative_or_absolute_path(url: str, path: str) -> None:
    assert sqlite_path(url) == Path(path)
    assert sqlite_path(url).is_absolute() == path.startswith("/")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite://host/x.sqlite", "sqlite://host/x.sqlite"),  # a host: not a file URL
        (f"sqlite://reader:{SECRET}@db.internal/x.sqlite", "sqlite://db.internal/x.sqlite"),
        ("sqlite:///", "sqlite:///"),  # no path
        ("sqlite:////", "sqlite:////"),
        (f"sqlite:///?key={SECRET}", "sqlite:///"),
        ("sqlite:predictions.sqlite", "sqlite:predictions.sqlite"),
    ],
)
def test_a_malformed_sqlite_url_is_refused_naming_it_without_credentials(
    url: str, shown: str
) -> None:
    with pytest.raises(MonitorError) as error:
        sqlite_path(url)
    message = str(error.value)
    assert message.startswith(f"--current {shown!r}: not a SQLite URL")
    assert "sqlite:///relative/path or sqlite:////absolute/path" in message
    assert SECRET not in message


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        (f"s3://AKIAEXAMPLE:{SECRET}@bucket/exports/p.sqlite", "s3://bucket/exports/p.sqlite"),
        (
            f"https://bucket.example/p.parquet?X-Amz-Signature={SECRET}",
            "https://bucket.example/p.parquet",
        ),
        (f"sqlite:////mnt/logs/p.sqlite?key={SECRET}", "sqlite:////mnt/logs/p.sqlite"),
        ("sqlite:///logs/p.sqlite", "sqlite:///logs/p.sqlite"),
        ("data/monitoring/batch.parquet", "data/monitoring/batch.parquet"),
        ("C:\\logs\\p.sqlite", "C:\\logs\\p.sqlite"),
    ],
)
def test_redact_keeps_the_location_and_drops_credentials(source: str, shown: str) -> None:
    assert redact(source) == shown


def test_local_source_yields_the_file_a_sqlite_url_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = tmp_path / "logs" / "predictions.sqlite"
    log.parent.mkdir()
    log.write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    with local_source("sqlite:///logs/predictions.sqlite") as relative:
        assert relative.resolve() == log.resolve()
    with local_source(f"sqlite:///{log}") as absolute:
        assert absolute == log
    with (
        pytest.raises(MonitorError, match=r"no prediction log at '.*/logs/other\.sqlite'"),
        local_source("sqlite:///logs/other.sqlite"),
    ):
        pass
    with pytest.raises(MonitorError, match="no prediction log"), local_source("sqlite:///logs"):
        pass  # a directory is not a log


def test_only_a_missing_output_of_dvc_lock_counts_as_dvc_tracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--current of a stage's output DVC can restore is checked out; a missing dependency
    (the user's source file) is not DVC's to restore: "does not exist" is the message."""
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  ingest:\n    cmd: python -m mlops_template ingest\n"
        "    deps:\n    - path: data/external/batch.csv\n      md5: 0\n"
        "    outs:\n    - path: data/raw/dataset.parquet\n      md5: 1\n"
    )
    monkeypatch.chdir(tmp_path)
    assert _dvc_tracked(Path("data/raw/dataset.parquet"))
    assert not _dvc_tracked(Path("data/external/batch.csv"))
    assert not _dvc_tracked(Path("data/raw/other.parquet"))
    (tmp_path / "data" / "raw").mkdir(parents=True)
    (tmp_path / "data" / "raw" / "dataset.parquet").write_bytes(b"")
    assert not _dvc_tracked(Path("data/raw/dataset.parquet"))  # present: nothing to restore
    with (
        pytest.raises(MonitorError, match=r"--current 'data/external/batch\.csv' does not exist"),
        local_source("data/external/batch.csv"),
    ):
        pass


# --- the command -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml + data/schema.json + data/split/train.parquet, and a prediction log of
    LOGGED rows at logs/predictions.sqlite written by the serving API's logger."""
    from mlops_template.config import load_params
    from mlops_template.data import load_source
    from mlops_template.features import feature_names
    from mlops_template.predlog import PredictionLogger
    from mlops_template.validate import infer_schema

    root = tmp_path_factory.mktemp("monitor-sources")
    shutil.copy2(FIXTURE_PARAMS, root / "params.yaml")
    params = load_params(root / "params.yaml")
    data = load_source(params.data, root)
    schema = infer_schema(data, params.data)
    (root / "data" / "split").mkdir(parents=True)
    (root / "data" / "schema.json").write_text(json.dumps(schema))
    data.to_parquet(root / "data" / "split" / "train.parquet", index=False)

    rows = data.sample(LOGGED, random_state=0)
    labels = rows[params.data.target].astype(str).tolist()
    classes = [str(c) for c in schema["classes"]]
    probabilities = [[0.9 if c == label else 0.1 for c in classes] for label in labels]
    (root / "logs").mkdir()
    logger = PredictionLogger(root / "logs" / "predictions.sqlite", classes=classes)
    features = rows[feature_names(schema)].to_dict("records")
    assert logger.log(features[:100], labels[:100], probabilities[:100], "v1", "req-1")
    assert logger.log(features[100:], labels[100:], probabilities[100:], "v1", "req-2")
    logger.close()
    return root


def check(project: Path, source: str, out: str) -> tuple[Any, dict[str, Any] | None]:
    result = run(
        ["python", "-m", "mlops_template", "monitor", "check", "--current", source,
         "--out", out, "--no-fail-on-drift"],
        project,
        check=False,
        GITHUB_OUTPUT="",
        GITHUB_STEP_SUMMARY="",
        MONITOR_REFERENCE_STAGE="",
    )  # fmt: skip
    report = project / out / "drift.json"
    return result, json.loads(report.read_text()) if report.is_file() else None


def test_check_reads_the_log_a_relative_or_absolute_sqlite_url_names(project: Path) -> None:
    absolute = f"sqlite:///{project / 'logs' / 'predictions.sqlite'}"
    assert absolute.startswith("sqlite:////")
    for url, out in (("sqlite:///logs/predictions.sqlite", "rel"), (absolute, "abs")):
        result, report = check(project, url, out)
        assert result.returncode == 0, result.stderr
        assert report is not None
        assert report["source"] == url
        assert report["rows"]["current"] == LOGGED
        assert report["model_versions"] == {"v1": LOGGED}
        assert report["status"] == "ok", report["reasons"]  # the training rows themselves


def test_check_refuses_a_malformed_sqlite_url_with_exit_2_and_no_credentials(
    project: Path,
) -> None:
    for url, shown in (
        (f"sqlite://reader:{SECRET}@db.internal/logs/predictions.sqlite",
         "sqlite://db.internal/logs/predictions.sqlite"),
        ("sqlite:///", "sqlite:///"),
    ):  # fmt: skip
        result, report = check(project, url, "bad")
        assert result.returncode == 2, result.stderr
        assert f"--current {shown!r}: not a SQLite URL" in result.stderr
        assert SECRET not in result.stderr + result.stdout
        assert report is None


def test_check_names_the_missing_file_of_a_sqlite_url(project: Path) -> None:
    result, report = check(project, f"sqlite:///logs/gone.sqlite?key={SECRET}", "missing")
    assert result.returncode == 2, result.stderr
    expected = (
        f"--current 'sqlite:///logs/gone.sqlite': no prediction log at "
        f"'{project / 'logs' / 'gone.sqlite'}'"
    )
    assert expected in result.stderr
    assert "None: None" not in result.stderr and SECRET not in result.stderr
    assert report is None
