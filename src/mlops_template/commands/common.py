"""What every command shares: loading params once, and turning user errors into a clear
message and an exit code instead of a traceback."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import typer

from mlops_template import paths
from mlops_template.config import Params, ParamsError, load_params
from mlops_template.log import get_logger

logger = get_logger("cli")

EXIT_USER_ERROR = 2  # bad params, missing file, bad data source: fix the input and rerun


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """ParamsError and friends become one logged message and exit code 2."""
    from mlops_template.data import DataError

    try:
        yield
    except ParamsError as exc:
        for problem in exc.problems:
            logger.error("params.yaml: %s", problem)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except FileNotFoundError as exc:
        # str() of an OSError names the file; args[0] would be the bare errno
        logger.error("%s: %s (run the earlier stages first: dvc repro)", exc.filename, exc.strerror)
        raise typer.Exit(EXIT_USER_ERROR) from None
    except (DataError, KeyError) as exc:
        logger.error("%s", exc.args[0] if exc.args else exc)
        raise typer.Exit(EXIT_USER_ERROR) from None


@contextlib.contextmanager
def model_errors() -> Iterator[None]:
    """A model that cannot be built or exported (train.ModelError: e.g. a step of
    user_model.py skl2onnx cannot convert; a feature step's bad column) becomes one logged
    message and exit code 2: fix user_model.py and rerun."""
    from mlops_template.derived_features import FeatureStepError
    from mlops_template.train import ModelError

    try:
        yield
    except (ModelError, FeatureStepError) as exc:
        logger.error("%s (nothing was written)", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None


def params(path: Path = paths.PARAMS) -> Params:
    with user_errors():
        return load_params(path)


def pipeline_is_fresh(root: Path) -> bool:
    """`dvc status` is clean: the workspace's outputs are those of its code, data, params."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "status", "--quiet"],
        cwd=root,
        env=dict(os.environ, DVC_NO_ANALYTICS="1"),
        capture_output=True,
        text=True,
    )
    return result.returncode == 0
