"""`python -m mlops_template monitor ...`: drift check, labelled feedback, issue and PR.

    monitor check  --current SOURCE [--last 24h | --since T --until T]   exit 0 ok, 3 drift
    monitor append --batch FILE        labelled rows -> data/external/feedback/ (DVC tracks it)
    monitor labels --file FILE         delayed labels of served predictions -> the log's db
    monitor performance [--last 7d]    live metrics per version and window   exit 0 ok, 3 drop
    monitor issue                      open or update the one `drift` issue (gh api)
    monitor pr                         retraining PR of the feedback + dvc.lock (cml pr create)

SOURCE is the prediction log (a SQLite file or `sqlite:///path` URL, read for a time
window), a CSV/Parquet batch, a file in the repository tracked by DVC (fetched with
`dvc checkout`/`dvc pull`), or any URL `dvc get-url` reads (s3://, gs://, azure://, ssh://,
http(s)://: where a DVC remote keeps files). Credentials inside a URL never reach the
report or the log.

The reference is the training data of the production model: by default
data/split/train.parquet, data/schema.json, data/split/test.parquet and models/model.onnx
of the checked-out commit (run `dvc repro` first). `--reference-stage prod` (or
`--reference-ref REF`) rebuilds them from the commit GTO assigned to that stage, in a
temporary git worktree sharing the DVC cache, as the deploy workflow deploys that commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import typer

from mlops_template import paths, pglog
from mlops_template.commands.common import EXIT_USER_ERROR, params, user_errors
from mlops_template.files import atomic_path, read_json, remove, write_bytes, write_json, write_text
from mlops_template.github import run_url
from mlops_template.log import get_logger
from mlops_template.pull_request import (
    PullRequest,
    PullRequestError,
    changed,
    open_pull_request,
    require_token,
)

logger = get_logger("monitor")

EXIT_DRIFT = 3
LOG_SUFFIXES = (".sqlite", ".sqlite3", ".db")
BATCH_SUFFIXES = (".csv", ".parquet", ".pq")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
ISSUE_MARKER = "<!-- mlops-template: drift monitor -->"
ISSUE_SUMMARY = paths.MONITOR_REPORT_DIR / "summary.md"  # the report without images

monitor_app = typer.Typer(
    help="Drift monitoring: check the prediction log or a batch, add labelled feedback.",
    no_args_is_help=True,
)


# Options several commands share (one definition, one help text).
LOG_OPTION = typer.Option(
    None,
    "--log",
    envvar="PREDICTION_LOG",
    help="The prediction log: a SQLite file (default logs/predictions.sqlite), "
    "sqlite:///PATH, or a postgresql:// URL. Env: PREDICTION_LOG.",
    show_default=False,
)
SINCE_OPTION = typer.Option(None, "--since", help="Log window start (ISO 8601, UTC).")
UNTIL_OPTION = typer.Option(None, "--until", help="Log window end, exclusive.")
MODEL_VERSION_OPTION = typer.Option(
    None, "--model-version", help="Only the predictions of this model version."
)


class MonitorError(ValueError):
    """A monitoring input a user must fix (the message names it)."""


# --------------------------------------------------------------------------- sources


def redact(source: str) -> str:
    """A source fit for logs and reports: no user, password or query in a URL."""
    parts = urlsplit(source)
    if parts.scheme and parts.netloc:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return f"{parts.scheme}://{host}{parts.path}"
    if parts.scheme and "@" in source:
        return f"{parts.scheme}:<redacted>"
    if len(parts.scheme) > 1 and parts.query:  # sqlite:///x?key=... (not C:\\...)
        return source.split("?", 1)[0]
    return source


def parse_duration(text: str, option: str = "--last") -> timedelta:
    """'24h', '30m', '7d', '1w', '90s' -> timedelta."""
    match = DURATION.match(text)
    if not match:
        raise MonitorError(
            f"{option} {text!r}: use a number and a unit s, m, h, d or w, e.g. 24h or 7d"
        )
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)])


def parse_time(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise MonitorError(
            f"{option} {text!r}: not an ISO 8601 time, e.g. 2026-05-01 or 2026-05-01T12:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_window(
    since: str | None, until: str | None, last: str | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    if last and since:
        raise MonitorError("give --last or --since, not both")
    end = parse_time(until, "--until") if until else None
    start = parse_time(since, "--since") if since else None
    if last:
        start = (end or now or datetime.now(UTC)) - parse_duration(last)
    if start and end and start >= end:
        raise MonitorError(f"--since {start.isoformat()} is not before --until {end.isoformat()}")
    return start, end


def _run_tool(args: list[str], what: str) -> None:
    try:
        result = subprocess.run(args, text=True, capture_output=True, timeout=1800)
    except FileNotFoundError:
        raise MonitorError(f"{what}: {args[0]!r} is not installed") from None
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-5:])
        raise MonitorError(f"{what} failed:\n{tail}")


def sqlite_path(source: str) -> Path:
    """sqlite:///relative/path or sqlite:////absolute/path (SQLAlchemy's convention; a
    ?query of driver options is ignored: the log is opened read-only)."""
    rest = source.removeprefix("sqlite:").split("?", 1)[0]
    if rest.startswith("///") and rest[3:].strip("/"):
        return Path(rest[3:])
    raise MonitorError(
        f"--current {redact(source)!r}: not a SQLite URL: write sqlite:///relative/path or "
        "sqlite:////absolute/path"
    )


@contextlib.contextmanager
def local_source(source: str) -> Iterator[Path]:
    """The source as a local file (downloaded to a temporary directory when remote)."""
    if source.startswith("sqlite:"):
        path = sqlite_path(source)
        if not path.is_file():
            raise MonitorError(
                f"--current {redact(source)!r}: no prediction log at {str(path.absolute())!r}"
            )
        yield path
        return
    parts = urlsplit(source)
    if parts.scheme and len(parts.scheme) > 1 and parts.netloc:  # a URL, not C:\...
        name = Path(parts.path).name or "current"
        with tempfile.TemporaryDirectory(prefix="monitor-") as tmp:
            target = Path(tmp) / name
            logger.info("fetching %s with dvc get-url", redact(source))
            _run_tool(
                [sys.executable, "-m", "dvc", "get-url", source, str(target)],
                f"dvc get-url {redact(source)}",
            )
            yield target
        return
    path = Path(source)
    if (not path.exists() and Path(f"{source}.dvc").is_file()) or _dvc_tracked(path):
        logger.info("%s is tracked by DVC: checking it out", source)
        try:
            _run_tool([sys.executable, "-m", "dvc", "checkout", "--quiet", source], "dvc checkout")
        except MonitorError:
            _run_tool(
                [sys.executable, "-m", "dvc", "pull", "--quiet", source], f"dvc pull {source}"
            )
    if not path.exists():
        raise MonitorError(
            f"--current {source!r} does not exist (a path, a DVC-tracked file, sqlite:///PATH "
            "or a URL dvc get-url reads)"
        )
    yield path


def _dvc_tracked(path: Path) -> bool:
    """An output of a stage in dvc.lock that is missing from the workspace (a stage's
    dependency is not: DVC cannot restore it)."""
    from mlops_template.worktree import locked_outputs

    return not path.exists() and path.as_posix() in locked_outputs(Path("."))


def read_batch(path: Path) -> Any:
    import pandas as pd

    from mlops_template.data import normalise_columns

    suffix = path.suffix.lower()
    if suffix not in BATCH_SUFFIXES:
        raise MonitorError(f"{str(path)!r}: a batch must be CSV or Parquet ({BATCH_SUFFIXES})")
    try:
        frame = pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)
    except Exception as exc:
        raise MonitorError(f"{str(path)!r} cannot be read: {exc}") from exc
    return normalise_columns(frame)


# --------------------------------------------------------------------------- reference


@dataclass(frozen=True)
class Reference:
    root: Path  # where data/split/*.parquet, data/schema.json, models/model.onnx are
    label: str  # "workspace" or "prod (v1.2.0, commit abc12345)"
    commit: str | None


def stage_commit(stage: str, name: str, root: Path = Path()) -> tuple[str, str] | None:
    """(commit, version) of the artifact assigned to `stage` in the GTO registry (the
    registry module's reading of the tags: the same the deploy workflow acts on), or None."""
    from mlops_template.registry import RegistryError, load_state

    try:
        state = load_state(root, name)
    except (RegistryError, OSError) as exc:  # not a git repository, git missing
        logger.warning("the model registry could not be read: %s", exc)
        return None
    version = state.current(stage)
    info = state.version(version) if version else None
    return (info.commit, version) if info else None


@contextlib.contextmanager
def reference_files(ref: str | None, stage: str | None, model_name: str) -> Iterator[Reference]:
    """The reference files: the workspace's, or those of REF / of the commit in STAGE,
    reproduced in a temporary worktree that shares the DVC cache."""
    from mlops_template.worktree import (
        repro_in_worktree,
        resolve_commit,
        tail,
        temporary_worktree,
    )

    root = Path.cwd()
    label = None
    if stage:
        found = stage_commit(stage, model_name)
        if found is None:
            logger.warning(
                "no version of %r is assigned to %r (GTO): the reference is the checked-out "
                "commit's training data",
                model_name,
                stage,
            )
        else:
            ref, version = found
            label = f"{stage} ({model_name} {version}"
    if not ref:
        yield Reference(root, "checked-out commit (workspace)", None)
        return
    try:
        commit = resolve_commit(ref, root)
    except ValueError as exc:
        raise MonitorError(str(exc)) from None
    label = f"{label}, commit {commit[:8]})" if label else f"{ref} (commit {commit[:8]})"
    head = subprocess.run(["git", "rev-parse", "HEAD"], text=True, capture_output=True).stdout
    if head.strip() == commit and paths.TRAIN_DATA.is_file():
        yield Reference(root, label, commit)
        return
    with temporary_worktree(commit, root) as tree:
        logger.info("reproducing the reference %s in a temporary worktree", label)
        result = repro_in_worktree(tree, root)
        if result.returncode != 0:
            output = tail(result.stdout + result.stderr, 8)
            raise MonitorError(f"dvc repro of the reference {label} failed:\n{output}")
        yield Reference(tree, label, commit)


# --------------------------------------------------------------------------- model outputs


def _model_predictions(model: Path, frame: Any, schema: dict[str, Any]) -> Any:
    from mlops_template.features import feature_frame
    from mlops_template.monitor import prediction_frame
    from mlops_template.train import onnx_predict, onnx_predict_values, onnx_session

    if schema.get("task") == "regression":
        import pandas as pd

        from mlops_template.monitor import PREDICTED_VALUE

        values = onnx_predict_values(onnx_session(model), feature_frame(frame, schema), schema)
        return pd.DataFrame({PREDICTED_VALUE: values})
    labels, proba = onnx_predict(onnx_session(model), feature_frame(frame, schema), schema)
    return prediction_frame(labels, proba, schema["classes"])


def _logged_predictions(frame: Any, schema: dict[str, Any]) -> tuple[Any, str | None]:
    from mlops_template import predlog
    from mlops_template.monitor import prediction_frame

    if schema.get("task") == "regression":
        return _logged_values(frame)
    classes = [str(c) for c in schema["classes"]]
    columns = [f"{predlog.PROBABILITY_PREFIX}{c}" for c in classes]
    logged = predlog.logged_classes(frame)
    if predlog.PREDICTION not in frame.columns or any(c not in frame.columns for c in columns):
        return None, (
            f"the log's classes {logged} are not the model's {classes}: prediction drift not "
            "checked (filter the window with --model-version)"
        )
    return prediction_frame(frame[predlog.PREDICTION], frame[columns], classes), None


def _logged_values(frame: Any) -> tuple[Any, str | None]:
    """A regression model's served values (`log.prediction`), as the drift check's
    predicted-value column; a window that also holds class labels is refused."""
    import pandas as pd

    from mlops_template import predlog
    from mlops_template.monitor import PREDICTED_VALUE

    if predlog.PREDICTION not in frame.columns:
        return None, "the log window has no predictions: prediction drift not checked"
    logged = frame[predlog.PREDICTION]
    values = pd.to_numeric(logged, errors="coerce")
    labels = logged[values.isna() & logged.notna()]
    if len(labels):
        other = f"class predictions (e.g. {labels.iloc[0]!r})"
    elif predlog.logged_classes(frame):
        other = "class probabilities"
    else:
        return pd.DataFrame({PREDICTED_VALUE: values.to_numpy(dtype=float)}), None
    return None, (
        f"the log window holds {other} next to the regression model's values: prediction "
        "drift not checked (filter the window with --model-version)"
    )


# --------------------------------------------------------------------------- check


def _github_output(**values: Any) -> None:
    target = os.environ.get("GITHUB_OUTPUT")
    if target:
        with open(target, "a") as out:
            for key, value in values.items():
                out.write(f"{key}={value}\n")


def _step_summary(markdown: str) -> None:
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        with open(target, "a") as out:
            out.write(markdown + "\n")


@monitor_app.command("check")
def check(
    current: str = typer.Option(
        ...,
        "--current",
        "-c",
        envvar="MONITOR_SOURCE",
        help="Prediction log (.sqlite/.db, sqlite:///PATH), CSV/Parquet batch, DVC-tracked "
        "file, or a URL dvc get-url reads. Env: MONITOR_SOURCE.",
        show_default=False,
    ),
    last: str | None = typer.Option(
        None,
        "--last",
        envvar="MONITOR_LAST",
        help="Log window ending now (or at --until): 24h, 7d.",
    ),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    model_version: str | None = MODEL_VERSION_OPTION,
    reference_stage: str | None = typer.Option(
        None,
        "--reference-stage",
        envvar="MONITOR_REFERENCE_STAGE",
        help="Rebuild the reference from the commit GTO assigned to this stage (e.g. prod).",
    ),
    reference_ref: str | None = typer.Option(
        None, "--reference-ref", help="Rebuild the reference from this git ref."
    ),
    out: Path = typer.Option(paths.MONITOR_REPORT_DIR, "--out", help="Report directory."),
    fail_on_drift: bool = typer.Option(
        True, "--fail-on-drift/--no-fail-on-drift", help="Exit 3 on drift (default)."
    ),
) -> None:
    """Compare the current data with the production model's training data (drift)."""

    from mlops_template import predlog
    from mlops_template.features import feature_names
    from mlops_template.monitor import (
        check_drift,
        distribution_png,
        plot_name,
        render_markdown,
    )

    p = params()
    started = time.perf_counter()
    with user_errors(), _monitor_errors():
        start, end = time_window(since, until, last)
        with (
            reference_files(reference_ref, reference_stage, p.registry.model_name) as ref,
            # a PostgreSQL log is read where it is (pglog.py), not downloaded
            contextlib.nullcontext(current)
            if pglog.is_url(current)
            else local_source(current) as source,
        ):
            import pandas as pd

            schema = read_json(ref.root / paths.SCHEMA)
            reference = pd.read_parquet(ref.root / paths.TRAIN_DATA)
            model = ref.root / paths.MODEL_ONNX
            test_split = ref.root / paths.TEST_DATA
            window: dict[str, Any] = {}
            versions: dict[str, int] = {}
            note = None
            current_predictions = None
            if (
                pglog.is_url(current)
                or source.suffix.lower() in LOG_SUFFIXES
                or current.startswith("sqlite:")
            ):
                frame = predlog.read_log(
                    source, start, end, features=feature_names(schema), model_version=model_version
                )
                window = {
                    "since": start.isoformat() if start else None,
                    "until": end.isoformat() if end else None,
                    "model_version": model_version,
                }
                versions = {
                    str(k): int(v) for k, v in frame[predlog.MODEL_VERSION].value_counts().items()
                }
                if len(frame):
                    current_predictions, note = _logged_predictions(frame, schema)
            else:
                if start or end or model_version:
                    logger.warning("--last/--since/--until/--model-version apply to a log; ignored")
                frame = read_batch(source)
                missing = [c for c in feature_names(schema) if c not in frame.columns]
                if missing:
                    raise MonitorError(
                        f"{redact(current)}: missing feature column(s) {missing} of the schema"
                    )
            reference_predictions = None
            if model.is_file() and test_split.is_file():
                reference_predictions = _model_predictions(
                    model, pd.read_parquet(test_split), schema
                )
                if current_predictions is None and note is None and len(frame):
                    current_predictions = _model_predictions(model, frame, schema)
            elif note is None:
                note = f"no model at {paths.MODEL_ONNX}: prediction drift not checked"
            report = check_drift(
                reference,
                frame,
                schema,
                p.monitor,
                reference_predictions,
                current_predictions,
                note,
            )
            reference_label = f"{paths.TRAIN_DATA} of {ref.label}"

    shown = redact(current)
    remove(out / "plots")
    plots: dict[str, str] = {}
    if report.status != "insufficient_data":
        columns = report.features[: p.monitor.max_plots] + report.predictions
        for column in columns:
            name = plot_name(column.name)
            write_bytes(out / "plots" / name, distribution_png(column))
            plots[column.name] = f"plots/{name}"
    markdown = render_markdown(report, shown, reference_label, plots)
    summary = render_markdown(report, shown, reference_label)
    document = report.to_dict() | {
        "source": shown,
        "window": window,
        "model_versions": versions,
        "reference": {
            "label": ref.label,
            "commit": ref.commit,
            "dataset_hash": schema.get("dataset_hash"),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(out / "drift.json", document)
    write_text(out / "drift.md", markdown)
    write_text(out / "summary.md", summary)
    _github_output(status=report.status, drift=str(report.drifted).lower())
    _step_summary(summary)
    flagged = [c.name for c in report.features if c.drifted]
    logger.info(
        "drift check: %s (%d current rows vs %d reference rows; drifted: %s) -> %s (%.1fs)",
        report.status,
        report.rows_current,
        report.rows_reference,
        flagged or "none",
        out / "drift.md",
        time.perf_counter() - started,
    )
    for reason in report.reasons:
        (logger.warning if report.drifted else logger.info)("%s", reason)
    if report.drifted and fail_on_drift:
        raise typer.Exit(EXIT_DRIFT)


@contextlib.contextmanager
def _monitor_errors() -> Iterator[None]:
    try:
        yield
    except MonitorError as exc:
        logger.error("%s", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except FileNotFoundError as exc:
        if exc.filename is not None:
            raise  # user_errors names the file
        logger.error("%s", exc)  # e.g. predlog.read_log's own message: it names the file
        raise typer.Exit(EXIT_USER_ERROR) from None
    except ValueError as exc:  # e.g. an unreadable prediction log
        if type(exc).__name__ in ("ParamsError", "DataError"):
            raise
        logger.error("%s", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None


# --------------------------------------------------------------------------- prune


@monitor_app.command("prune")
def prune(
    log: str = LOG_OPTION,
    older_than: str = typer.Option(
        ..., "--older-than", help="Delete predictions older than this, e.g. 30d or 12w."
    ),
) -> None:
    """Delete old predictions from the prediction log (retention). The server may keep
    writing meanwhile; freed space is reused by new rows (VACUUM shrinks the file)."""
    from mlops_template import predlog

    with _monitor_errors():
        age = parse_duration(older_than, "--older-than")
        cutoff = datetime.now(UTC) - age
        path = log or paths.PREDICTION_LOG
        batches, rows = predlog.prune(path, cutoff)
    logger.info(
        "%s: deleted %d prediction(s) from before %s (%d stored batch(es))",
        redact(str(path)),
        rows,
        cutoff.isoformat(timespec="seconds"),
        batches,
    )


# --------------------------------------------------------------------------- labels


def _log_path(log: Path | str | None) -> Path | str:
    """The log to store labels in or read them from: a SQLite file that exists, or a
    postgresql:// URL (checked when connecting)."""
    if pglog.is_url(log):
        return str(log)
    path = Path(log) if log else paths.PREDICTION_LOG
    if not path.is_file():
        raise MonitorError(
            f"prediction log {str(path)!r} does not exist (--log or PREDICTION_LOG): labels "
            "are stored in the log beside the predictions they belong to"
        )
    return path


def _schema() -> dict[str, Any]:
    if not paths.SCHEMA.is_file():
        raise MonitorError(
            f"{paths.SCHEMA} not found: run `dvc repro` first (it gives the target and the "
            "classes the labels are checked against)"
        )
    return read_json(paths.SCHEMA)


def _task(schema: dict[str, Any]) -> str:
    from mlops_template.features import is_regression

    return "regression" if is_regression(schema) else "classification"


def _labels_file(source: str, schema: dict[str, Any]) -> Any:
    """A labels file (local, DVC-tracked or a URL), checked against the schema's target
    and classes (performance.normalise_labels)."""
    from mlops_template.performance import normalise_labels

    task = _task(schema)
    with local_source(source) as path:
        frame = read_batch(path)
    classes = schema.get("classes") if task == "classification" else None
    return normalise_labels(frame, schema["target"], task, classes)


@monitor_app.command("labels")
def labels(
    file: str = typer.Option(
        ...,
        "--file",
        "-f",
        help="CSV/Parquet with request_id, row (0-based, in the request; optional for "
        "one-row requests) and label (or the target's column name); a DVC-tracked file or "
        "a URL.",
        show_default=False,
    ),
    log: str = LOG_OPTION,
) -> None:
    """Store delayed ground-truth labels of served predictions (by request id and row),
    each once: a label sent again is ignored, a different one for a labelled row refused."""
    from mlops_template.performance import store_labels

    params()
    with user_errors(), _monitor_errors():
        path = _log_path(log)
        schema = _schema()
        normalised = _labels_file(file, schema)
        stored = store_labels(path, normalised)
    logger.info(
        "%s: %d label(s) read, %d stored in %s, %d already there (ignored), %d refused",
        redact(file),
        len(normalised),
        stored.new,
        redact(str(path)),
        stored.duplicates,
        len(stored.conflicts),
    )
    _github_output(labels_stored=stored.new, labels_refused=len(stored.conflicts))
    if stored.conflicts:
        for request_id, row, kept, refused in stored.conflicts[:10]:
            logger.error(
                "request %r row %d is labelled %r already: %r refused",
                request_id,
                row,
                kept,
                refused,
            )
        logger.error(
            "%d label(s) conflict with stored ones and were not stored (the others were): "
            "correct the file, or the stored label with SQL on the `labels` table",
            len(stored.conflicts),
        )
        raise typer.Exit(EXIT_USER_ERROR)


# ---------------------------------------------------------------------- performance


def _test_metrics(name: str) -> dict[str, dict[str, Any]]:
    """Each registered version's test-set metrics (its registration tag's metadata)."""
    from mlops_template.registry import RegistryError, load_state

    try:
        state = load_state(Path.cwd(), name)
    except RegistryError as exc:
        logger.warning("no model registry here (%s): live metrics have nothing to compare", exc)
        return {}
    return {v.version: v.metrics for v in state.versions}


@monitor_app.command("performance")
def performance(
    log: str = LOG_OPTION,
    labels_file: str | None = typer.Option(
        None,
        "--labels",
        envvar="MONITOR_LABELS",
        help="Labels to use besides the ones stored in the log (same format as `monitor "
        "labels`; not stored). Env: MONITOR_LABELS.",
        show_default=False,
    ),
    last: str | None = typer.Option(
        None, "--last", envvar="MONITOR_LAST", help="Predictions of the last 7d, 24h, ..."
    ),
    since: str | None = SINCE_OPTION,
    until: str | None = UNTIL_OPTION,
    model_version: str | None = MODEL_VERSION_OPTION,
    out: Path = typer.Option(paths.MONITOR_REPORT_DIR, "--out", help="Report directory."),
    export_labelled: Path | None = typer.Option(
        None,
        "--export-labelled",
        help="Write the labelled predictions as training rows (features + target) to this "
        "Parquet file, for `monitor append` (the retraining PR).",
    ),
    fail_on_drop: bool = typer.Option(
        True, "--fail-on-drop/--no-fail-on-drop", help="Exit 3 when performance dropped."
    ),
    only_logs: bool = typer.Option(
        False,
        "--only-logs",
        help="A source that is not a prediction log (a CSV/Parquet batch: no predictions to "
        "join labels to) is skipped, status `skipped` (the monitor workflow's step).",
    ),
) -> None:
    """Live metrics of each model version per time window, from the labelled predictions,
    against the version's test-set metrics (monitor.performance in params.yaml)."""
    import pandas as pd

    from mlops_template import predlog
    from mlops_template.features import feature_names
    from mlops_template.metrics import REGRESSION_METRICS
    from mlops_template.performance import (
        LABEL,
        join_labels,
        performance_by_window,
        performance_verdict,
        read_labels,
        render_markdown,
        results_to_dict,
    )

    p = params()
    settings = p.monitor.performance
    started = time.perf_counter()
    shown = redact(log) if log else str(paths.PREDICTION_LOG)
    # a database (SQLite or PostgreSQL), not a CSV/Parquet batch
    a_log = not log or log.startswith("sqlite:") or pglog.is_url(log)
    a_log = a_log or Path(urlsplit(log or "").path).suffix.lower() in LOG_SUFFIXES
    if only_logs and not a_log:
        reason = f"{shown}: not a prediction log, so no served predictions to join labels to"
        write_json(out / "performance.json", {"status": "skipped", "reasons": [reason]})
        _github_output(performance="skipped", labelled_rows=0, labelled_file="")
        logger.info("live performance: skipped (%s)", reason)
        return
    with user_errors(), _monitor_errors():
        start, end = time_window(since, until, last)
        schema = _schema()
        task = _task(schema)
        if not log or ("://" not in log and not log.startswith("sqlite:")):
            _log_path(log)  # a missing local log: say which
        source = (
            contextlib.nullcontext(log)
            if pglog.is_url(log)
            else local_source(log or str(paths.PREDICTION_LOG))
        )
        with source as path:
            if (
                not pglog.is_url(log)
                and path.suffix.lower() not in LOG_SUFFIXES
                and not (log or "").startswith("sqlite:")
            ):
                raise MonitorError(
                    f"--log {shown!r}: not a prediction log (a SQLite file: {LOG_SUFFIXES})"
                )
            features = feature_names(schema) if export_labelled else []
            frame = predlog.read_log(
                path, start, end, features=features, model_version=model_version
            )
            known = read_labels(path, task)
        if labels_file:
            given = _labels_file(labels_file, schema)
            # a label already stored wins, as `monitor labels` would keep it
            known = pd.concat([known, given], ignore_index=True).drop_duplicates(
                ["request_id", "row"]
            )
        joined = join_labels(frame, known)
        # the other task's rules (params.yaml ships both) do not apply, as in the gate
        max_drop = {
            k: v
            for k, v in settings.max_drop.items()
            if (k in REGRESSION_METRICS) == (task == "regression")
        }
        tested = _test_metrics(p.registry.model_name)
        results = performance_by_window(
            joined.rows,
            task,
            tested,
            pd.Timedelta(hours=settings.window_hours),
            settings.min_labels,
            max_drop,
            settings.bootstrap_resamples,
            settings.confidence,
            settings.seed,
        )
        alarm, reasons = performance_verdict(results)
    untested = sorted({r.model_version for r in results} - set(tested))
    markdown = render_markdown(results, joined, reasons, settings.confidence, untested)
    exported = 0
    if export_labelled is not None and len(joined.rows):
        rows = joined.rows[feature_names(schema)].assign(**{schema["target"]: joined.rows[LABEL]})
        with atomic_path(export_labelled) as tmp:
            rows.to_parquet(tmp, index=False)
        exported = len(rows)
    judged = any(r.judged for r in results)
    document = {
        "status": "drop" if alarm else "ok" if judged else "insufficient_data",
        "reasons": reasons,
        "source": shown,
        "predictions": len(frame),
        "labels": joined.labels,
        "labelled_predictions": len(joined.rows),
        "unmatched_labels": joined.unmatched,
        "ambiguous_labels": joined.ambiguous,
        "versions_without_test_metrics": untested,
        "windows": results_to_dict(results),
        "window": {
            "since": start.isoformat() if start else None,
            "until": end.isoformat() if end else None,
            "model_version": model_version,
            "hours": settings.window_hours,
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - started, 3),
    }
    write_json(out / "performance.json", document)
    write_text(out / "performance.md", markdown)
    _github_output(
        performance=document["status"],
        labelled_rows=exported,
        labelled_file=export_labelled.as_posix() if exported and export_labelled else "",
    )
    _step_summary(markdown)
    logger.info(
        "live performance: %s (%d labelled of %d predictions, %d window(s)) -> %s (%.1fs)",
        document["status"],
        len(joined.rows),
        len(frame),
        len(results),
        out / "performance.md",
        time.perf_counter() - started,
    )
    if exported:
        logger.info("%d labelled prediction(s) as training rows -> %s", exported, export_labelled)
    for reason in reasons:
        logger.warning("%s", reason)
    if alarm and fail_on_drop:
        raise typer.Exit(EXIT_DRIFT)


# --------------------------------------------------------------------------- append


@monitor_app.command("append")
def append(
    batch: str = typer.Option(
        ...,
        "--batch",
        "-b",
        envvar="MONITOR_FEEDBACK",
        help="Labelled CSV/Parquet batch (features + target), a DVC-tracked file or a URL. "
        "Env: MONITOR_FEEDBACK.",
        show_default=False,
    ),
) -> None:
    """Add a labelled batch to the training data (data/external/feedback/, tracked by DVC
    as the ingest stage's dependency): the next `dvc repro` retrains on it."""
    import pandas as pd

    from mlops_template.data import append_feedback, frame_hash, read_feedback
    from mlops_template.monitor import prepare_feedback

    params()
    with user_errors(), _monitor_errors():
        for required in (paths.SCHEMA, paths.RAW_DATA):
            if not required.is_file():
                raise MonitorError(
                    f"{required} not found: run `dvc repro` first (a batch is checked against "
                    "the data contract of the current model)"
                )
        schema = read_json(paths.SCHEMA)
        with local_source(batch) as path:
            incoming = read_batch(path)
        prepared, extra = prepare_feedback(incoming, schema, redact(batch))
        if extra:
            logger.warning("%s: column(s) %s are not in the schema: left out", redact(batch), extra)
        optional = [*schema.get("id_columns", []), *schema.get("dropped_columns", [])]
        known = append_feedback(
            pd.read_parquet(paths.RAW_DATA), read_feedback(paths.FEEDBACK_DIR), optional
        )
        combined = append_feedback(known, [(redact(batch), prepared)], optional)
    new = combined.iloc[len(known) :].reset_index(drop=True)
    skipped = len(incoming) - len(new)
    if new.empty:
        logger.info(
            "%s: all %d row(s) are already in the training data: nothing appended",
            redact(batch),
            len(incoming),
        )
        _github_output(feedback_rows=0, feedback_file="")
        return
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = paths.FEEDBACK_DIR / f"{stamp}-{frame_hash(new)[:12]}.parquet"
    with atomic_path(target) as tmp:
        new.to_parquet(tmp, index=False)
    counts = new[schema["target"]].astype(str).value_counts().to_dict()
    logger.info(
        "appended %d labelled row(s) %s (%d duplicate or already present skipped) -> %s; "
        "commit it and run `dvc repro` to retrain",
        len(new),
        counts,
        skipped,
        target,
    )
    _github_output(feedback_rows=len(new), feedback_file=target.as_posix())


# --------------------------------------------------------------------------- issue


# What each report is: its bad status, the summary file an issue shows (no images), and
# the words of the issue and PR texts.
REPORT_KINDS = {
    "drift.json": ("drift", "summary.md", "Drift detected again", "drift check",
                   "Data drift found by the monitor workflow"),
    "performance.json": ("drop", "performance.md", "Live performance dropped again",
                         "live performance", "Live performance drop found by the monitor workflow"),
}  # fmt: skip


def _report_kind(report: Path) -> tuple[str, str, str, str, str]:
    kind = REPORT_KINDS.get(report.name)
    if kind is None:
        raise MonitorError(
            f"--report {str(report)!r}: not a monitor report ({', '.join(REPORT_KINDS)})"
        )
    return kind


def issue_body(summary: str, url: str | None, limit: int = 60_000) -> str:
    """The issue text: the report without images (an issue cannot show the run's files)."""
    footer = f"\n\n---\nRun: {url} (report and plots in its `drift-report` artifact)" if url else ""
    if len(summary) > limit:
        summary = summary[:limit] + "\n\n… (truncated: see the report in the run's artifact)"
    return f"{ISSUE_MARKER}\n{summary}{footer}\n"


def _gh(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    gh = shutil.which("gh")
    if gh is None:
        raise MonitorError("`gh` (GitHub CLI) is not on PATH: it posts the drift issue")
    result = subprocess.run([gh, *args], text=True, capture_output=True, timeout=120)
    if check and result.returncode != 0:
        raise MonitorError(f"gh {' '.join(args[:4])} failed: {result.stderr.strip()[-500:]}")
    return result


@monitor_app.command("issue")
def issue(
    report: Path = typer.Option(paths.MONITOR_JSON, "--report", help="drift.json of the check."),
    label: str = typer.Option("drift", "--label", help="The issue's label."),
    title: str = typer.Option("Data drift detected", "--title", help="Title of a new issue."),
    repo: str | None = typer.Option(
        None, "--repo", envvar="GITHUB_REPOSITORY", help="owner/name (env GITHUB_REPOSITORY)."
    ),
) -> None:
    """Open the single open issue labelled `drift` (or --label) with the report (drift.json
    or performance.json), or update it."""
    with user_errors(), _monitor_errors():
        bad, summary_name, again, _, description = _report_kind(report)
        data = read_json(report)
        if data.get("status") != bad:
            logger.info("%s: status %s, no issue posted", report.name, data.get("status"))
            return
        if not repo or not re.fullmatch(r"[\w.-]+/[\w.-]+", repo):
            raise MonitorError(f"--repo {repo!r}: need owner/name (GITHUB_REPOSITORY)")
        summary_file = report.parent / summary_name
        body = issue_body(summary_file.read_text(), run_url(os.environ))
        # The label may exist already (422): that is fine; a real failure shows below.
        _gh(
            ["api", f"repos/{repo}/labels", "-X", "POST", "-f", f"name={label}",
             "-f", "color=d93f0b", "-f", f"description={description}"],
            check=False,
        )  # fmt: skip
        listed = _gh(
            ["api", f"repos/{repo}/issues", "-X", "GET", "-f", f"labels={label}",
             "-f", "state=open", "-f", "per_page=100"]
        )  # fmt: skip
        try:
            issues = [i for i in json.loads(listed.stdout or "[]") if "pull_request" not in i]
        except (json.JSONDecodeError, TypeError):
            raise MonitorError(f"gh api repos/{repo}/issues: unexpected answer") from None
        if issues:
            number = min(int(i["number"]) for i in issues)
            _gh(["api", f"repos/{repo}/issues/{number}", "-X", "PATCH", "-f", f"body={body}"])
            when = data.get("created_at", "now")
            link = f": {run_url(os.environ)}" if run_url(os.environ) else ""
            _gh(
                ["api", f"repos/{repo}/issues/{number}/comments", "-X", "POST",
                 "-f", f"body={again} ({when}){link}. The issue text is the latest report."]
            )  # fmt: skip
            logger.info("updated drift issue #%d of %s", number, repo)
        else:
            _gh(
                ["api", f"repos/{repo}/issues", "-X", "POST", "-f", f"title={title}",
                 "-f", f"labels[]={label}", "-f", f"body={body}"]
            )  # fmt: skip
            logger.info("opened a drift issue on %s", repo)


# --------------------------------------------------------------------------- pr


@monitor_app.command("pr")
def pull_request(
    reports: list[Path] = typer.Option(
        [paths.MONITOR_JSON],
        "--report",
        help="drift.json and/or performance.json: why retrain (repeat the option).",
    ),
) -> None:
    """Open a retraining PR with the new feedback and dvc.lock (`cml pr create`). Needs
    REPO_TOKEN: a token that may push a branch, so that the PR workflow runs on the PR."""
    with user_errors(), _monitor_errors():
        try:
            require_token()  # before anything else: the one thing a caller must provide
        except PullRequestError as exc:
            raise MonitorError(str(exc)) from None
        feedback = changed([paths.FEEDBACK_DIR.as_posix()])
        if not feedback:
            raise MonitorError(f"no new feedback under {paths.FEEDBACK_DIR}: nothing to retrain on")
        files = [paths.FEEDBACK_DIR.as_posix(), "dvc.lock"]
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        found, why = [], []
        for report in reports:
            bad, _, _, heading, _ = _report_kind(report)
            data = read_json(report) if report.is_file() else {}
            if data.get("status") != bad:
                continue
            found.append("drift" if bad == "drift" else "a live performance drop")
            why += ["", f"Why ({heading}):", *[f"- {r}" for r in data.get("reasons", [])[:10]]]
        what = " and ".join(found) or "a monitor finding"
        lines = [
            f"The monitor found {what} ({day}) and labelled data was available: this PR "
            "adds it to the training data and retrains (`dvc repro`).",
            "",
            "New feedback: " + ", ".join(f"`{f}`" for f in feedback),
            *why,
        ]
        if run_url(os.environ):
            lines += ["", f"Monitor report: {run_url(os.environ)}"]
        lines += ["", "Review the model report the PR workflow posts before merging."]
        token = re.sub(r"[^0-9A-Za-z]", "", feedback[0].rsplit("/", 1)[-1].split(".")[0])[-12:]
        short = {"drift": "drift detected", "a live performance drop": "live performance dropped"}
        request = PullRequest(
            title="Retrain on labelled feedback ("
            + " and ".join(short[f] for f in found or ["drift"])
            + f" {day})",
            message=f"Retrain on labelled feedback ({len(feedback)} new file(s))",
            body="\n".join(lines),
            branch=f"retrain/feedback-{token}",
            markdown=True,
        )
        try:
            open_pull_request(request, files, files=[*feedback, "dvc.lock"])
        except PullRequestError as exc:
            raise MonitorError(str(exc)) from None


def register(app: typer.Typer) -> None:
    app.add_typer(monitor_app, name="monitor")
