"""Serving fixtures: real uvicorn servers on 127.0.0.1 (free ports), started as
subprocesses on projects built by the pipeline (`built_project`) or by the model code on
a mixed numeric/categorical dataset with missing values (`mixed_model`)."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from tests.conftest import mixed_dataset
from tests.helpers import FIXTURE_PARAMS, tool_env

# What a served project needs: the files the Dockerfile bakes into the image.
SERVED_FILES = (
    "params.yaml",
    "data/schema.json",
    "models/model.onnx",
    "models/train_info.json",
    "eval/metrics.json",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def start_server(
    root: Path, log: Path, *, cli: bool = True, ready: str = "health", **env: str
) -> Server:
    """Start a server on `root`: `python -m mlops_template serve` (what `make serve`
    runs) or, with cli=False, `uvicorn mlops_template.serve:app_from_env --factory` (the
    image's CMD). ready="health": wait for 200 on /health; "listening": any answer."""
    port = free_port()
    if cli:
        args = [sys.executable, "-m", "mlops_template", "serve", "--port", str(port)]
    else:
        args = [
            sys.executable,
            "-m",
            "uvicorn",
            "mlops_template.serve:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
    environment = tool_env(**env)
    for name in ("MODEL_VERSION", "GIT_COMMIT", "MLOPS_PROJECT_ROOT", "PORT"):
        if name not in env:
            environment.pop(name, None)
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, cwd=root, env=environment, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited {process.returncode}:\n{server.output()}")
        try:
            status = httpx.get(f"{server.url}/health", timeout=5).status_code
            if ready == "listening" or status == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    stop_server(server)
    raise AssertionError(f"server not ready within 60 s:\n{server.output()}")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def copy_served_files(source: Path, dest: Path, **params: Any) -> Path:
    """The files a server needs, copied from a built project; `params` edits serve.*."""
    for rel in SERVED_FILES:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / rel, dest / rel)
    if params:
        doc = yaml.safe_load((dest / "params.yaml").read_text())
        doc.setdefault("serve", {}).update(params)
        (dest / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dest


def records(frame: pd.DataFrame, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Request rows from a data frame: schema features only, NaN/None -> null."""
    names = [f["name"] for f in schema["features"]]
    return json.loads(frame[names].to_json(orient="records"))


@pytest.fixture(scope="session")
def served(built_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """`python -m mlops_template serve` on the project `dvc repro` built (default data)."""
    server = start_server(built_project, tmp_path_factory.mktemp("served") / "server.log")
    yield server
    stop_server(server)


@dataclass(frozen=True)
class MixedModel:
    """A model on numeric + categorical features with missing values, served from `root`."""

    root: Path
    schema: dict[str, Any]
    pipeline: Any
    test: pd.DataFrame
    tolerance: float


@pytest.fixture(scope="session")
def mixed_model(tmp_path_factory: pytest.TempPathFactory) -> MixedModel:
    """Trained in-process with the pipeline's own code (validate.infer_schema,
    train.fit_pipeline / to_onnx / train_info): covers what the default data does not
    (categorical inputs; numeric and categorical features with and without missing
    values in training: x2 and color have some, x1 and size none)."""
    from mlops_template import train as t
    from mlops_template.config import (
        DataParams,
        HistGradientBoostingParams,
        SplitParams,
        TrainParams,
    )
    from mlops_template.data import stratified_split
    from mlops_template.validate import infer_schema

    root = tmp_path_factory.mktemp("mixed")
    frame = mixed_dataset(rows=600, seed=1)
    schema = infer_schema(frame, DataParams(target="label", id_columns=["customer_id"]))
    train, test = stratified_split(frame, "label", SplitParams(test_size=0.25, seed=0))
    # The default model (hist_gradient_boosting), kept small: continuous probabilities,
    # so no exact ties between classes for float32 rounding to break differently.
    params = TrainParams(
        model="hist_gradient_boosting",
        hist_gradient_boosting=HistGradientBoostingParams(max_iter=50),
    )
    pipeline = t.fit_pipeline(train, schema, params)
    onnx_model = t.to_onnx(pipeline, schema)
    parity = t.check_parity(pipeline, onnx_model, test, schema, params.onnx_probability_tolerance)
    assert parity.passed, parity
    skops_model = t.skops_bytes(pipeline)
    (root / "models").mkdir()
    (root / "data").mkdir()
    (root / "eval").mkdir()
    (root / "models/model.onnx").write_bytes(onnx_model)
    (root / "models/train_info.json").write_text(
        json.dumps(t.train_info(params, parity, skops_model, onnx_model, len(train)))
    )
    (root / "data/schema.json").write_text(json.dumps(schema))
    (root / "eval/metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    shutil.copyfile(FIXTURE_PARAMS, root / "params.yaml")
    return MixedModel(root, schema, pipeline, test, params.onnx_probability_tolerance)


def _mixed_server(mixed_model: MixedModel, tmp: Path, unknown: str, **env: str) -> Iterator[Server]:
    root = copy_served_files(
        mixed_model.root, tmp / "project", unknown_categories=unknown, max_body_mb=0.25
    )
    server = start_server(root, tmp / "server.log", cli=False, **env)
    yield server
    stop_server(server)


@pytest.fixture(scope="session")
def mixed_accept(
    mixed_model: MixedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """uvicorn (the image's CMD) on the mixed model; unknown categories accepted;
    version and commit from the environment, as the image sets them."""
    yield from _mixed_server(
        mixed_model,
        tmp_path_factory.mktemp("mixed-accept"),
        "accept",
        MODEL_VERSION="v1.2.3",
        GIT_COMMIT="0123abcd",
    )


@pytest.fixture(scope="session")
def mixed_reject(
    mixed_model: MixedModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    yield from _mixed_server(mixed_model, tmp_path_factory.mktemp("mixed-reject"), "reject")
