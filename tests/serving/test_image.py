"""The serving image built and run for real, without a Docker engine: `make image-local`
(buildah as root, --isolation chroot, on the cached debootstrap stand-in for the python
base image; .ci/image.sh) on a project `dvc repro` built from the template's fixtures,
then the image's own command started with `buildah run`.

One build per module. What is checked: real rows through /predict give what the model
gives in-process, the server runs as the image's non-root user, the prediction log lands
in the mounted volume, `make smoke` passes against the container, and a model that does
not match its training record makes the build fail.

Skipped (with the reason) only when buildah cannot run here: not root, or no buildah
(.ci/run installs it with apt-get when it can)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from tests.helpers import run
from tests.serving.conftest import SERVED_FILES, free_port, records
from tests.serving.processes import descendants

from mlops_template.features import feature_frame
from mlops_template.files import read_json
from mlops_template.predlog import LogFormatError, read_log
from mlops_template.train import onnx_predict, onnx_session

# One tag per purpose, reused by every run: a rebuild replaces the image (image.sh removes
# the tag's previous one), so images do not pile up in storage.
IMAGE = "localhost/mlops-template-model-api:image-test"
TAMPERED = "localhost/mlops-template-model-api:image-test-tampered"
BUILDAH_ENV = {"STORAGE_DRIVER": os.environ.get("STORAGE_DRIVER", "vfs")}


def _why_not_buildah() -> str | None:
    if shutil.which("buildah") is None:
        return "buildah is not installed (apt-get install buildah debootstrap; .ci/run does)"
    if os.geteuid() != 0:
        return "buildah --isolation chroot needs root (run the tests as root, e.g. in CI)"
    return None


WHY_NOT = _why_not_buildah()
# Decided at collection: a skip costs nothing (not even the session's pipeline run).
pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


def buildah(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run(["buildah", *args], Path.cwd(), check=check, timeout=300, **BUILDAH_ENV)


def image_config(tag: str, kind: str = "OCIv1") -> dict[str, Any]:
    return json.loads(buildah("inspect", "--type", "image", tag).stdout)[kind]["config"]


def image_exists(tag: str) -> bool:
    return buildah("inspect", "--type", "image", tag, check=False).returncode == 0


def build(context: Path, tag: str) -> subprocess.CompletedProcess[str]:
    """`make image-local` in the project: what a user runs (no check of the exit code)."""
    return run(["make", "image-local", f"LOCAL_IMAGE={tag}"], context, check=False, timeout=1500)


@pytest.fixture(scope="module")
def image(built_project: Path) -> str:
    result = build(built_project, IMAGE)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-6000:]
    return IMAGE


def uvicorn_pid(runner: subprocess.Popen[bytes]) -> int:
    for pid in descendants(runner.pid):
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        # the Python process itself (not the buildah-chroot-exec wrapper in front of it)
        if (
            cmdline
            and Path(cmdline[0].decode()).name.startswith("python")
            and any(arg.endswith(b"/uvicorn") for arg in cmdline)
        ):
            return pid
    raise AssertionError(f"no uvicorn process under buildah run (pid {runner.pid})")


@dataclass
class Container:
    name: str
    url: str
    config: dict[str, Any]
    volume: Path
    runner: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def serving_command(config: dict[str, Any], port: int) -> list[str]:
    """The image's CMD, on loopback and a free port: chroot isolation shares the host's
    network, where the image's 0.0.0.0:8000 may be taken."""
    command = list(config["Cmd"])
    assert command[0] == "uvicorn" and "--port" in command and "--host" in command, command
    command[command.index("--port") + 1] = str(port)
    command[command.index("--host") + 1] = "127.0.0.1"
    return command


@pytest.fixture(scope="module")
def container(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Container]:
    config = image_config(image)
    env = dict(item.split("=", 1) for item in config["Env"])
    log_dir = Path(env["PREDICTION_LOG"]).parent
    assert str(log_dir) in config["Volumes"], (env["PREDICTION_LOG"], config["Volumes"])
    tmp = tmp_path_factory.mktemp("image-run")
    volume = tmp / "predictions"
    volume.mkdir()
    uid, _, gid = config["User"].partition(":")
    os.chown(volume, int(uid), int(gid or uid))
    name = f"mlops-image-test-{os.getpid()}"
    buildah("rm", name, check=False)
    buildah("from", "--name", name, image)
    port = free_port()
    log = tmp / "container.log"
    deadline = time.monotonic() + 120
    with log.open("wb") as out:
        # No --user: the image's configured user, as `docker run` would use.
        runner = subprocess.Popen(
            ["buildah", "run", "--isolation", "chroot", "--network", "host",
             "--volume", f"{volume}:{log_dir}", name, "--", *serving_command(config, port)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **BUILDAH_ENV},
        )  # fmt: skip
    box = Container(name, f"http://127.0.0.1:{port}", config, volume, runner, log)
    try:
        while True:
            if runner.poll() is not None:
                raise AssertionError(f"buildah run exited {runner.returncode}:\n{box.output()}")
            try:
                if httpx.get(f"{box.url}/health", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no 200 on /health within 120 s:\n{box.output()}")
            time.sleep(0.05)
        yield box
    finally:
        # buildah run answers SIGTERM by killing its process: stop uvicorn itself, as
        # `docker stop` would (it flushes the prediction log on shutdown).
        with contextlib.suppress(AssertionError, ProcessLookupError):
            os.kill(uvicorn_pid(runner), signal.SIGTERM)
        try:
            runner.wait(30)
        except subprocess.TimeoutExpired:
            runner.kill()
            runner.wait()
        buildah("rm", name, check=False)


def test_the_image_runs_as_its_non_root_user(container: Container) -> None:
    user = container.config["User"]
    uid = user.partition(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"image user {user!r}"
    status = (Path("/proc") / str(uvicorn_pid(container.runner)) / "status").read_text()
    uids = next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1:]
    # real, effective, saved and filesystem uid: all the image's user
    assert uids == [uid] * 4, status


def test_the_image_records_its_commit_and_keeps_the_healthcheck(
    image: str, built_project: Path
) -> None:
    head = run(["git", "rev-parse", "HEAD"], built_project).stdout.strip()
    config = image_config(image)
    assert config["Labels"]["org.opencontainers.image.revision"] == head
    assert f"GIT_COMMIT={head}" in config["Env"]
    # The Dockerfile's HEALTHCHECK survives the build (the OCI format would drop it).
    health = image_config(image, "Docker").get("Healthcheck") or {}
    port = config["Cmd"][config["Cmd"].index("--port") + 1]
    assert f"http://127.0.0.1:{port}/health" in " ".join(health.get("Test", [])), health


def test_real_rows_get_the_in_process_predictions(
    container: Container, built_project: Path
) -> None:
    schema = read_json(built_project / "data/schema.json")
    frame = pd.read_parquet(built_project / "data/split/test.parquet")
    answer = httpx.post(f"{container.url}/predict", json=records(frame, schema), timeout=30)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    session = onnx_session((built_project / "models/model.onnx").read_bytes())
    labels, proba = onnx_predict(session, feature_frame(frame, schema), schema)
    assert body["classes"] == [str(c) for c in schema["classes"]]
    assert body["predictions"] == labels.tolist()
    np.testing.assert_allclose(np.asarray(body["probabilities"]), proba, rtol=0, atol=1e-6)
    meta = httpx.get(f"{container.url}/metadata").json()
    info = read_json(built_project / "models/train_info.json")
    assert meta["model_sha256"] == info["sha256"]["model.onnx"]
    head = run(["git", "rev-parse", "HEAD"], built_project).stdout.strip()
    assert meta["git_commit"] == head
    assert meta["model_version"] == body["model_version"] == "dev"


def test_the_prediction_log_lands_in_the_volume(container: Container, built_project: Path) -> None:
    schema = read_json(built_project / "data/schema.json")
    rows = records(pd.read_parquet(built_project / "data/split/test.parquet").iloc[:3], schema)
    request_id = f"image-test-{time.time_ns()}"
    answer = httpx.post(f"{container.url}/predict", json=rows, headers={"x-request-id": request_id})
    assert answer.status_code == 200, answer.text
    path = container.volume / "predictions.sqlite"
    logged = pd.DataFrame()
    for _ in range(200):  # the log is written by a background thread every 0.2 s
        try:
            logged = read_log(path)
        except (FileNotFoundError, LogFormatError, sqlite3.Error):
            pass  # not created yet, or caught between creating the file and its table
        else:
            logged = logged[logged["log.request_id"] == request_id]
            if len(logged) == len(rows):
                break
        time.sleep(0.05)
    assert len(logged) == len(rows), f"{path}: {len(logged)} rows\n{container.output()}"
    assert logged["log.prediction"].astype(str).tolist() == answer.json()["predictions"]
    assert str(path.stat().st_uid) == container.config["User"].partition(":")[0]


def test_make_smoke_passes_against_the_container(container: Container, built_project: Path) -> None:
    sha = read_json(built_project / "models/train_info.json")["sha256"]["model.onnx"]
    passed = run(
        ["make", "smoke", f"URL={container.url}", "VERSION=dev", f"MODEL_SHA256={sha}"],
        built_project,
        check=False,
    )
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "smoke test passed" in passed.stderr
    # ...and it does look: another model's sha256 fails it.
    other = run(
        ["make", "smoke", f"URL={container.url}", f"MODEL_SHA256={'0' * 64}"],
        built_project,
        check=False,
    )
    assert other.returncode != 0
    assert "does not serve the promoted model" in other.stderr


def test_a_tampered_model_fails_the_build(image: str, built_project: Path, tmp_path: Path) -> None:
    """The same project with one byte of the model flipped: the build's `serve --check`
    refuses it (the layers before the model's COPY come from the cache)."""
    context = tmp_path / "project"
    build_files = ["Makefile", "Dockerfile", ".dockerignore", ".ci/image.sh", "pyproject.toml",
                   "uv.lock", "README.md", *SERVED_FILES]  # fmt: skip
    for rel in build_files:
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built_project / rel, context / rel)
    shutil.copytree(built_project / "src", context / "src")
    model = bytearray((context / "models/model.onnx").read_bytes())
    model[len(model) // 2] ^= 0xFF
    (context / "models/model.onnx").write_bytes(bytes(model))
    buildah("rmi", TAMPERED, check=False)
    result = build(context, TAMPERED)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-6000:]
    assert "serve --check" in output
    assert "models/model.onnx: sha256" in output and "does not match" in output, output[-6000:]
    assert not image_exists(TAMPERED)
