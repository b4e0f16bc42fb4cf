"""`python -m mlops_template serve`: the prediction API on the model in this project."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops_template import paths
from mlops_template.commands.common import EXIT_USER_ERROR, params
from mlops_template.log import get_logger

logger = get_logger("serve")


def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, envvar="PORT", help="Port to listen on ($PORT)."),
    workers: int = typer.Option(1, min=1, help="uvicorn worker processes."),
    access_log: bool = typer.Option(False, help="Log every request (costs latency)."),
    check: bool = typer.Option(
        False, "--check", help="Only verify the model files (sha256, schema), then exit."
    ),
) -> None:
    """Serve models/model.onnx over HTTP (FastAPI + uvicorn); see /docs once running."""
    from mlops_template.serve import ModelError, verify_model

    p = params()
    root = Path.cwd()
    try:
        verify_model(root)
        if not (root / paths.SCHEMA).exists():
            raise ModelError(f"{paths.SCHEMA}: data schema not found; build it first (`make run`)")
    except ModelError as exc:
        logger.error("%s", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None
    if check:
        logger.info("%s matches %s: ready to serve", paths.MODEL_ONNX, paths.TRAIN_INFO)
        return

    import uvicorn

    logger.info(
        "serving %s on http://%s:%d (max %d rows per request)",
        paths.MODEL_ONNX,
        host,
        port,
        p.serve.max_rows,
    )
    uvicorn.run(
        "mlops_template.serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
