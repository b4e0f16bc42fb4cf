"""`python -m mlops_template predict --input FILE|DIR --output FILE`: batch scoring with
the served model (mlops_template.batch does the work)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import typer

from mlops_template import paths
from mlops_template.commands.common import EXIT_USER_ERROR, params
from mlops_template.log import get_logger

logger = get_logger("predict")


def _registry_version(
    root: Path, model_bytes: bytes, version: str | None, stage: str | None
) -> str:
    """The registered version asked for, after checking that the workspace model is the
    one registered under it (its sha256 in the registration tag)."""
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
    actual = hashlib.sha256(model_bytes).hexdigest()
    if actual != recorded:
        raise BatchError(
            f"{paths.MODEL_ONNX} (sha256 {actual[:12]}...) is not the model of {version} "
            f"({recorded[:12]}...): check it out first (`git checkout {info.tag} && dvc "
            "checkout`, or `dvc pull`), then rerun"
        )
    return version


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
        help="Label with this registered version (the workspace model must be it).",
    ),
    stage: str = typer.Option(
        None, "--stage", help="Label with the version in this stage, e.g. prod (same check)."
    ),
    threads: int = typer.Option(0, min=0, help="onnxruntime threads (0: every CPU)."),
) -> None:
    """Score a file or directory with models/model.onnx (what `serve` serves), chunk by
    chunk; refused rows go to <output stem>.rejects.csv."""
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
        schema = read_json(root / paths.SCHEMA, "data schema")
        contract = build_contract(schema, settings.params)
        label = settings.model_version
        if version is not None or stage is not None:
            from mlops_template.serve import verify_model

            model_bytes, _ = verify_model(root)
            label = _registry_version(root, model_bytes, version, stage)
        files = batch.input_files(input, output)
        batch.file_format(output)
        serve_params = settings.params.model_copy(
            update={"onnx_threads": threads or os.cpu_count() or 1}
        )
        model = load_model(root, contract, serve_params, label)
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
        "%s: %d rows scored of %d (%d refused: %s), %d file(s), %d request(s) batch-%s-*, "
        "%.1fs, %.0f rows/s%s",
        output,
        result.rows_scored,
        result.rows_read,
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
