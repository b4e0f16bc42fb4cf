"""Start-up: /health before the model is loaded, and refusing a model that does not match
its training record."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import httpx
import pytest
from tests.helpers import run
from tests.serving.conftest import copy_served_files, start_server, stop_server

pytestmark = pytest.mark.slow


def test_health_is_503_until_the_model_is_loaded(built_project: Path, tmp_path: Path) -> None:
    """models/model.onnx is a named pipe: the loader blocks reading it (a slow volume)
    until the test writes the model, so the not-yet-loaded state is observed for real."""
    root = copy_served_files(built_project, tmp_path / "project")
    model = (root / "models/model.onnx").read_bytes()
    (root / "models/model.onnx").unlink()
    os.mkfifo(root / "models/model.onnx")
    server = start_server(root, tmp_path / "server.log", cli=False, ready="listening")
    try:
        health = httpx.get(f"{server.url}/health")
        assert health.status_code == 503
        assert health.json()["status"] == "loading"
        assert health.headers["retry-after"] == "1"
        for method, path in (
            ("POST", "/predict"),
            ("POST", "/predict/columns"),
            ("GET", "/metadata"),
        ):
            answer = httpx.request(method, f"{server.url}{path}", json=[{}])
            assert answer.status_code == 503, (path, answer.text)
            assert "loading" in answer.json()["message"]

        def write_model() -> None:
            with open(root / "models/model.onnx", "wb") as pipe:
                pipe.write(model)

        writer = threading.Thread(target=write_model, daemon=True)
        writer.start()
        writer.join(30)
        assert not writer.is_alive(), "the server never read the model"
        for _ in range(200):
            health = httpx.get(f"{server.url}/health")
            if health.status_code == 200:
                break
            threading.Event().wait(0.05)
        assert health.status_code == 200, server.output()
        assert health.json()["status"] == "ok"
        assert httpx.get(f"{server.url}/metadata").status_code == 200
    finally:
        stop_server(server)


def test_tampered_model_is_refused(built_project: Path, tmp_path: Path) -> None:
    root = copy_served_files(built_project, tmp_path / "project")
    with open(root / "models/model.onnx", "ab") as model:
        model.write(b"\0")
    # The command refuses to start at all...
    refused = run(["python", "-m", "mlops_template", "serve", "--port", "1"], root, check=False)
    assert refused.returncode == 2
    assert "sha256" in refused.stderr and "models/model.onnx" in refused.stderr
    assert "does not match" in refused.stderr
    # ...and the app started directly (the image's CMD) reports it on /health, never serves.
    server = start_server(root, tmp_path / "server.log", cli=False, ready="listening")
    try:
        for _ in range(200):
            health = httpx.get(f"{server.url}/health")
            if health.json()["status"] != "loading":
                break
            threading.Event().wait(0.05)
        assert health.status_code == 503
        assert health.json()["status"] == "failed"
        assert "sha256" in health.json()["error"]
        answer = httpx.post(f"{server.url}/predict", json=[{}])
        assert answer.status_code == 503 and "failed to load" in answer.json()["message"]
    finally:
        stop_server(server)
    assert "does not match" in server.output()


def test_check_and_missing_model(built_project: Path, tmp_path: Path) -> None:
    root = copy_served_files(built_project, tmp_path / "project")
    ok = run(["python", "-m", "mlops_template", "serve", "--check"], root)
    assert "ready to serve" in ok.stderr
    (root / "models/model.onnx").unlink()
    missing = run(["python", "-m", "mlops_template", "serve", "--check"], root, check=False)
    assert missing.returncode == 2
    assert "models/model.onnx" in missing.stderr and "make run" in missing.stderr
