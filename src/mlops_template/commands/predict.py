"""`python -m mlops_template predict --input FILE|DIR --output FILE`: batch scoring with
the served model, or with a registered version's (`--version` / `--stage`: its files
restored in a temporary worktree of its commit, mlops_template.worktree), the ONNX
checked against the sha256 of its registration tag; mlops_template.batch does the work."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from mlops_template import paths
from mlops_template.commands.common import EXIT_USER_ERROR, params
from mlops_template.log import get_logger
from mlops_template.registry import VersionInfo, file_sha256

logger = get_logger("predict")


# What batch scoring reads of a version: the model, the sha256 that verifies it, the
# request contract; eval/metrics.json too when the version's pipeline has it (metadata).
VERSION_FILES = (paths.MODEL_ONNX, paths.TRAIN_INFO, paths.SCHEMA)
OPTIONAL_VERSION_FILES = (paths.METRICS,)


@dataclass(frozen=True)
class Registered:
    """A registered version and the sha256 its registration tag records for its ONNX."""

    info: VersionInfo
    onnx_sha256: str

    @property
    def label(self) -> str:
        return f"{self.info.version} ({self.info.tag}, commit {self.info.commit[:8]})"


def _registry_version(root: Path, version: str | None, stage: str | None) -> Registered:
    """The registered version asked for (--version, or the version in --stage) and the
    sha256 of its model recorded in its registration tag."""
    from mlops_template import registry as r
    from mlops_template.batch import BatchError

    name = params(root / paths.PARAMS).registry.model_name
    try:
        state = r.load_state(root, name)
        if stage is not None:
            version = state.current(stage)
            if version is None:
                raise BatchError(f"--stage {stage}: no version of {name} is in {stage}")
        assert version is not None
        r.parse_version(version)
    except r.RegistryError as exc:
        raise BatchError(str(exc)) from None
    info = state.version(version)
    if info is None:
        raise BatchError(f"--version {version}: not a registered version of {name}")
    recorded = (info.metadata.get("model_sha256") or {}).get(paths.MODEL_ONNX.name)
    if recorded is None:
        raise BatchError(f"{info.tag}: its message records no model sha256")
    return Registered(info, recorded)


def _workspace_has(root: Path, registered: Registered) -> bool:
    """Is the workspace's model the version's (the sha256 its tag records)?"""
    try:
        return file_sha256(root / paths.MODEL_ONNX) == registered.onnx_sha256
    except FileNotFoundError:
        return False


def _not_registered(
    registered: Registered, tree: Path, rebuild: bool, tries: dict[str, str]
) -> str:
    """Why the files found for a version were refused: its ONNX is not the registered one."""
    actual = file_sha256(tree / paths.MODEL_ONNX)
    found = "rebuilt" if "repro" in tries else "found"
    advice = (
        " (its training is not bit-reproducible: fetch the registered files with `dvc pull` "
        "instead)"
        if "repro" in tries
        else " (the commit's dvc.lock may record older outputs than the registered ones, "
        "e.g. params committed without dvc.lock: rerun with --rebuild to rebuild them at "
        "its commit)"
        if not rebuild
        else ""
    )
    return (
        f"{registered.info.version}: the {paths.MODEL_ONNX} {found} at "
        f"{registered.info.commit[:8]} has sha256 {actual[:12]}..., not the "
        f"{registered.onnx_sha256[:12]}... its registration recorded{advice}"
    )


@contextlib.contextmanager
def version_files(root: Path, registered: Registered, rebuild: bool) -> Iterator[Path]:
    """A directory holding the version's model files: the workspace when its model is the
    version's, else a temporary worktree of the version's commit (the user's checkout is
    not touched) with the files restored from the DVC cache or remote (or, with
    REBUILD, rebuilt), the ONNX checked against the registered sha256."""
    from mlops_template.batch import BatchError
    from mlops_template.worktree import (
        OutputsUnavailable,
        cache_dir,
        has_file,
        locked_outputs,
        restore_outputs,
        temporary_worktree,
    )

    version = registered.info.version
    if _workspace_has(root, registered):
        logger.info("%s: the workspace's %s is its model", registered.label, paths.MODEL_ONNX)
        yield root
        return
    logger.info(
        "%s: the workspace's %s is not its model: fetching the version's files into a "
        "temporary worktree of its commit",
        registered.label,
        paths.MODEL_ONNX,
    )
    if not has_file(registered.info.commit, "dvc.yaml", root):
        raise BatchError(
            f"{registered.label}: that commit is not in this clone, or has no dvc.yaml to "
            "restore the model from (a shallow clone? `git fetch --unshallow --tags`)"
        )
    with temporary_worktree(registered.info.commit, root, prefix=f"{version}-") as tree:
        targets = [str(p) for p in VERSION_FILES]
        locked = locked_outputs(tree)
        optional = [str(p) for p in OPTIONAL_VERSION_FILES if str(p) in locked]

        def refusal(tree: Path) -> str | None:
            actual = file_sha256(tree / paths.MODEL_ONNX)
            if actual == registered.onnx_sha256:
                return None
            return f"{paths.MODEL_ONNX} has sha256 {actual[:12]}..."

        try:
            source = restore_outputs(
                tree, root, targets, rebuild=rebuild, optional=optional, accept=refusal
            )
        except OutputsUnavailable as exc:
            if all((tree / t).is_file() for t in targets):  # found, but not the registered
                raise BatchError(_not_registered(registered, tree, rebuild, exc.tries)) from None
            what = ", ".join(exc.missing)
            rebuilt = f"; `dvc repro` failed: {exc.tries['repro']}" if "repro" in exc.tries else ""
            advice = "" if rebuild else ", or rerun with --rebuild to rebuild them at its commit"
            raise BatchError(
                f"{registered.label}: {what} is in neither the DVC cache ({cache_dir(root)}) "
                f"nor the DVC remote (`dvc pull`: {exc.tries.get('pull', '?')}){rebuilt}. To "
                f"score with {version}: configure the DVC remote that holds its files (`dvc "
                "remote add -d NAME URL`, credentials in .dvc/config.local) and rerun (they "
                f"are fetched with `dvc pull`), `dvc push` them from where {version} was "
                f"built{advice}"
            ) from None
        logger.info(
            "%s: %s restored from %s (sha256 %s... as registered)",
            version,
            ", ".join(targets),
            {"git": "git", "cache": "the DVC cache", "remote": "the DVC remote"}.get(
                source, "a rebuild (dvc repro)"
            ),
            registered.onnx_sha256[:12],  # `refusal` accepted it: the registered sha256
        )
        yield tree


def predict(
    input: Path = typer.Option(
        ..., "--input", "-i", help="A CSV/Parquet file, or a directory of them."
    ),
    output: Path = typer.Option(..., "--output", "-o", help="Output file: .csv or .parquet."),
    chunk_rows: int = typer.Option(50_000, min=1, help="Rows read, scored and written at a time."),
    keep: list[str] = typer.Option(
        [], "--keep", help="Input column copied to the output (an id to join on); repeatable."
    ),
    max_bad_rows: int = typer.Option(
        0, help="Refused rows tolerated before the run fails (negative: no limit)."
    ),
    log: bool = typer.Option(
        True, "--log/--no-log", help="Log every chunk to the prediction log, as the API does."
    ),
    version: str = typer.Option(
        None,
        "--version",
        help="Score with this registered version's model (from its commit, via the DVC "
        "cache or remote; the workspace is not touched) and label with it.",
    ),
    stage: str = typer.Option(
        None, "--stage", help="Score with the version in this stage, e.g. prod (as --version)."
    ),
    rebuild: bool = typer.Option(
        False,
        "--rebuild",
        help="With --version/--stage: files in neither the DVC cache nor the remote are "
        "rebuilt (`dvc repro` at the version's commit), accepted if the ONNX sha256 is the "
        "registered one.",
    ),
    threads: int = typer.Option(0, min=0, help="onnxruntime threads (0: every CPU)."),
) -> None:
    """Score a file or directory with models/model.onnx (what `serve` serves), or with a
    registered version's model (--version / --stage), chunk by chunk; refused rows go to
    <output stem>.rejects.csv."""
    from mlops_template import batch
    from mlops_template.serve import ModelError, build_contract, load_model, settings_from_env
    from mlops_template.serve import _read_json as read_json

    root = Path.cwd()
    params(root / paths.PARAMS)  # a bad params.yaml: one message, exit 2
    settings = settings_from_env(root)
    root = settings.root
    prediction_log: Any = None
    try:
        if version is not None and stage is not None:
            raise batch.BatchError("give at most one of --version and --stage")
        files = batch.input_files(input, output)
        batch.file_format(output)
        serve_params = settings.params.model_copy(
            update={"onnx_threads": threads or os.cpu_count() or 1}
        )
        label = settings.model_version
        with contextlib.ExitStack() as stack:
            model_root = root
            if version is not None or stage is not None:
                registered = _registry_version(root, version, stage)
                label = registered.info.version
                model_root = stack.enter_context(version_files(root, registered, rebuild))
            # everything is read into memory here: a temporary worktree goes after this
            schema = read_json(model_root / paths.SCHEMA, "data schema")
            contract = build_contract(schema, settings.params)
            model = load_model(model_root, contract, serve_params, label, spinning=False)
        if log:
            from mlops_template import predlog

            environ = dict(os.environ)
            environ.setdefault(predlog.ENV_VAR, str(root / paths.PREDICTION_LOG))
            prediction_log = predlog.from_env(
                environ,
                classes=schema.get("classes") or [],
                max_queue_rows=max(100_000, 2 * chunk_rows),
            )
        config = batch.BatchConfig(
            chunk_rows=chunk_rows,
            max_bad_rows=None if max_bad_rows < 0 else max_bad_rows,
            keep=tuple(keep),
        )
        result = batch.run_batch(files, output, contract, model, label, prediction_log, config)
    except (batch.BatchError, ModelError) as exc:
        logger.error("%s", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None
    finally:
        if prediction_log is not None:
            prediction_log.close(timeout=batch.LOG_WAIT_SECONDS)
    logged = ""
    if prediction_log is not None:
        stats = prediction_log.stats()
        logged = f"; prediction log {prediction_log.path}: {stats.written} rows written"
        if stats.dropped or stats.failed:
            logged += f", {stats.dropped + stats.failed} NOT logged"
    logger.info(
        "%s: %d rows scored of %d with model %s (%d refused: %s), %d file(s), %d request(s) "
        "batch-%s-*, %.1fs, %.0f rows/s%s",
        output,
        result.rows_scored,
        result.rows_read,
        label,
        result.bad_rows,
        result.rejects,
        result.files,
        result.requests,
        result.run_id,
        result.seconds,
        result.rows_per_second,
        logged,
    )
    if result.unknown_categories:
        logger.warning(
            "%d category value(s) not seen in training were scored (serve.unknown_categories: "
            "accept: the model counts them as no known value)",
            result.unknown_categories,
        )


def register(app: typer.Typer) -> None:
    app.command("predict")(predict)
