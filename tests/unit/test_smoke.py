"""The deploy smoke-test client against a small HTTP server on 127.0.0.1 that answers like
the API (or not): it passes a healthy service and names the check that fails otherwise.
The real API and image are smoke-tested by tests/workflows/test_deploy_workflow.py."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mlops_template.smoke import SmokeError, example_row, smoke_test

SCHEMA = {
    "classes": ["no", "yes"],
    "features": [
        {"name": "x", "kind": "numeric", "mean": 1.5},
        {"name": "color", "kind": "categorical", "levels": ["red", "blue"]},
        {"name": "empty", "kind": "categorical", "levels": []},
    ],
}


def test_example_row_uses_means_and_first_levels() -> None:
    assert example_row(SCHEMA) == {"x": 1.5, "color": "red", "empty": None}


class Api:
    def __init__(self, **overrides: Any) -> None:
        self.answers: dict[str, tuple[int, Any]] = {
            "/health": (200, {"status": "ok"}),
            "/metadata": (200, {"model_version": "v1.0.0", "model_sha256": "ab", "schema": SCHEMA}),
            "/predict": (
                200,
                {"model_version": "v1.0.0", "predictions": ["yes"], "probabilities": [[0.3, 0.7]]},
            ),
        }
        self.answers.update(overrides)
        self.posted: list[Any] = []


@pytest.fixture
def api() -> Iterator[tuple[str, Api]]:
    state = Api()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            status, body = state.answers[self.path]
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            state.posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self._answer()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    server.shutdown()


def test_a_healthy_service_passes_and_one_row_is_posted(api: tuple[str, Api]) -> None:
    url, state = api
    result = smoke_test(url, expect_version="v1.0.0", expect_sha256="ab", timeout=5)
    assert (result.model_version, result.prediction) == ("v1.0.0", "yes")
    assert state.posted == [[example_row(SCHEMA)]]


@pytest.mark.parametrize(
    ("override", "kwargs", "message"),
    [
        ({}, {"expect_version": "v2.0.0"}, "model_version 'v1.0.0', expected 'v2.0.0'"),
        ({}, {"expect_sha256": "cd"}, "does not serve the promoted model"),
        ({"/health": (503, {"status": "loading"})}, {}, "not healthy after 1s"),
        ({"/predict": (422, {"message": "bad"})}, {}, "/predict: expected 200, got HTTP 422"),
        (
            {"/predict": (200, {"model_version": "v1.0.0", "predictions": ["maybe"],
                                "probabilities": [[0.5, 0.5]]})},
            {},
            "one prediction among ['no', 'yes'] expected",
        ),
        (
            {"/predict": (200, {"model_version": "v1.0.0", "predictions": ["yes"],
                                "probabilities": [[0.5, 0.6]]})},
            {},
            "probabilities sum to 1.1",
        ),
    ],
)  # fmt: skip
def test_a_failing_check_is_named(
    api: tuple[str, Api], override: dict[str, Any], kwargs: dict[str, str], message: str
) -> None:
    url, state = api
    state.answers.update(override)
    with pytest.raises(SmokeError) as error:
        smoke_test(url, timeout=1, **kwargs)
    assert message in str(error.value)
