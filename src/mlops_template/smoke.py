"""Smoke test of a running serving API (or of a container image): the deploy's last check.

Also the deploy runner's entry point, standard library only (no environment to install):
  python -m mlops_template.smoke verify [--sha256 HEX]      # the model bundle's files
  python -m mlops_template.smoke test (--url URL | --image IMAGE) [--expect-version V]
      [--expect-sha256 HEX] [--timeout S]
(`make verify-bundle` / `make smoke`; in a dev environment `python -m mlops_template
registry verify` and `serve-smoke` do the same.)

`smoke_test(url)` waits for `GET /health` to answer 200, reads `GET /metadata` (model
version, model sha256, data schema) and sends one `POST /predict` built from that schema;
it checks the answers' shape and, when given, the expected version and model sha256 (the
image really serves the promoted model). `container(image)` runs an image with `docker
run` on a free loopback port for the duration of the test. Standard library only: the
smoke test runs before anything else is installed on a deploy runner.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mlops_template.log import get_logger

logger = get_logger("smoke")

CONTAINER_PORT = 8000  # the port the serving image listens on (Dockerfile: PORT=8000)


class SmokeError(RuntimeError):
    """The service failed a smoke check (the message names the check)."""


@dataclass(frozen=True)
class SmokeResult:
    url: str
    model_version: str
    model_sha256: str | None
    prediction: str
    seconds: float


def _request(url: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, headers={"Content-Type": "application/json"} if data else {}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            payload = json.loads(exc.read() or b"null")
        except ValueError:
            payload = None
        return exc.code, payload


def example_row(schema: dict[str, Any]) -> dict[str, Any]:
    """One typical record: numeric features at their training mean, categories at their
    first level (a nullable feature without levels gets null)."""
    row: dict[str, Any] = {}
    for spec in schema.get("features", []):
        if spec.get("kind") == "numeric":
            mean = spec.get("mean")
            row[spec["name"]] = float(mean) if isinstance(mean, (int, float)) else 0.0
        else:
            levels = spec.get("levels") or []
            row[spec["name"]] = str(levels[0]) if levels else None
    return row


def wait_healthy(url: str, timeout: float, interval: float = 0.5) -> dict[str, Any]:
    """Poll GET /health until 200; SmokeError with the last answer after TIMEOUT seconds."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        try:
            status, body = _request(f"{url}/health", timeout=5.0)
            if status == 200:
                return body if isinstance(body, dict) else {}
            last = f"HTTP {status}: {body}"
        except (OSError, ValueError) as exc:
            last = str(exc)
        if time.monotonic() >= deadline:
            raise SmokeError(f"{url}/health: not healthy after {timeout:.0f}s (last: {last})")
        time.sleep(interval)


def smoke_test(
    url: str,
    expect_version: str | None = None,
    expect_sha256: str | None = None,
    timeout: float = 60.0,
) -> SmokeResult:
    """/health, /metadata and one /predict against the API at URL."""
    started = time.perf_counter()
    url = url.rstrip("/")
    wait_healthy(url, timeout)
    status, meta = _request(f"{url}/metadata")
    if status != 200 or not isinstance(meta, dict) or "schema" not in meta:
        raise SmokeError(f"{url}/metadata: expected 200 with a schema, got HTTP {status}")
    version = str(meta.get("model_version"))
    if expect_version is not None and version != expect_version:
        raise SmokeError(f"{url}/metadata: model_version {version!r}, expected {expect_version!r}")
    served_sha = meta.get("model_sha256")
    if expect_sha256 is not None and served_sha != expect_sha256:
        raise SmokeError(
            f"{url}/metadata: model_sha256 {served_sha!r}, expected {expect_sha256!r}: the "
            "service does not serve the promoted model"
        )
    schema = meta["schema"]
    status, answer = _request(f"{url}/predict", [example_row(schema)])
    if status != 200 or not isinstance(answer, dict):
        raise SmokeError(f"{url}/predict: expected 200, got HTTP {status}: {answer}")
    predictions = answer.get("predictions") or []
    if schema.get("task") == "regression":  # one number per row, no classes
        if (
            len(predictions) != 1
            or not isinstance(predictions[0], (int, float))
            or isinstance(predictions[0], bool)
            or not math.isfinite(predictions[0])
        ):
            raise SmokeError(f"{url}/predict: one finite predicted value expected, got {answer}")
        if str(answer.get("model_version")) != version:
            raise SmokeError(
                f"{url}/predict: model_version {answer.get('model_version')!r} != {version!r}"
            )
        return SmokeResult(
            url, version, served_sha, str(predictions[0]), time.perf_counter() - started
        )
    classes = [str(c) for c in schema.get("classes", [])]
    probabilities = answer.get("probabilities") or []
    if len(predictions) != 1 or str(predictions[0]) not in classes:
        raise SmokeError(f"{url}/predict: one prediction among {classes} expected, got {answer}")
    if len(probabilities) != 1 or len(probabilities[0]) != len(classes):
        raise SmokeError(f"{url}/predict: one probability per class expected, got {answer}")
    total = sum(float(p) for p in probabilities[0])
    if not math.isclose(total, 1.0, abs_tol=1e-3):
        raise SmokeError(f"{url}/predict: probabilities sum to {total}, not 1")
    if str(answer.get("model_version")) != version:
        raise SmokeError(
            f"{url}/predict: model_version {answer.get('model_version')!r} != {version!r}"
        )
    return SmokeResult(url, version, served_sha, str(predictions[0]), time.perf_counter() - started)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def container(
    image: str, container_port: int = CONTAINER_PORT, docker: str = "docker"
) -> Iterator[str]:
    """`docker run` IMAGE on a free loopback port; yields its URL; logs and removes it after."""
    port = free_port()
    started = subprocess.run(
        [docker, "run", "--detach", "--rm", "--publish",
         f"127.0.0.1:{port}:{container_port}", image],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if started.returncode != 0:
        raise SmokeError(f"docker run {image} failed: {started.stderr.strip()}")
    container_id = started.stdout.strip().splitlines()[-1]
    failed = False
    try:
        yield f"http://127.0.0.1:{port}"
    except BaseException:
        failed = True
        raise
    finally:
        if failed:
            logs = subprocess.run(
                [docker, "logs", container_id], capture_output=True, text=True, timeout=60
            )
            logger.error("container logs:\n%s", (logs.stdout + logs.stderr)[-4000:])
        subprocess.run(
            [docker, "rm", "--force", container_id], capture_output=True, text=True, timeout=60
        )


def main(argv: list[str] | None = None) -> int:
    """Stdlib-only command line for deploy runners (exit 0 ok, 2 failed check)."""
    import argparse
    from pathlib import Path

    from mlops_template import log
    from mlops_template.registry import RegistryError, verify_model_files

    parser = argparse.ArgumentParser(prog="python -m mlops_template.smoke")
    sub = parser.add_subparsers(dest="command", required=True)
    verify = sub.add_parser("verify", help="sha256 of the model files (train_info.json, --sha256)")
    verify.add_argument("--sha256", default=None, help="expected sha256 of models/model.onnx")
    test = sub.add_parser("test", help="/health, /metadata and one /predict")
    where = test.add_mutually_exclusive_group(required=True)
    where.add_argument("--url")
    where.add_argument("--image")
    test.add_argument("--expect-version", default=None)
    test.add_argument("--expect-sha256", default=None)
    test.add_argument("--timeout", type=float, default=120.0)
    test.add_argument("--container-port", type=int, default=CONTAINER_PORT)
    args = parser.parse_args(argv)
    log.configure()
    try:
        if args.command == "verify":
            found = verify_model_files(Path.cwd(), expected_onnx=args.sha256 or None)
            logger.info(
                "model files verified: %s",
                ", ".join(f"{k} {v[:12]}…" for k, v in sorted(found.items())),
            )
            return 0
        with contextlib.ExitStack() as stack:
            url = args.url or stack.enter_context(container(args.image, args.container_port))
            result = smoke_test(url, args.expect_version, args.expect_sha256, args.timeout)
        logger.info(
            "smoke test passed: %s serves %s (sha256 %s…), one row predicted %r, %.1fs",
            args.image or args.url, result.model_version, (result.model_sha256 or "?")[:12],
            result.prediction, result.seconds,
        )  # fmt: skip
        return 0
    except (SmokeError, RegistryError) as exc:
        logger.error("%s", exc)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
