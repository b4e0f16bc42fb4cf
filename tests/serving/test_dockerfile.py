"""The serving image's Dockerfile, checked without a Docker engine (none here): hadolint,
plus the properties the deploy relies on, read from the parsed instructions."""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shlex
from pathlib import Path

import pytest
from tests.helpers import TEMPLATE_ROOT, VENV_BIN, run
from tests.serving.conftest import SERVED_FILES

DOCKERFILE = TEMPLATE_ROOT / "Dockerfile"
DOCKERIGNORE = TEMPLATE_ROOT / ".dockerignore"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, args = full.partition(" ")
        out.append((keyword.upper(), args.strip()))
    return out


def final_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE.read_text())
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def exec_form(args: str) -> list[str]:
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def test_hadolint_passes() -> None:
    result = run([str(VENV_BIN / "hadolint"), str(DOCKERFILE)], TEMPLATE_ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_image_is_slim_python() -> None:
    steps = instructions(DOCKERFILE.read_text())
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE.read_text())
    assert base and re.fullmatch(r"python:3\.11-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base[1])
    froms = [args for keyword, args in steps if keyword == "FROM"]
    assert froms and all(f.startswith("${PYTHON_IMAGE}") for f in froms)


def test_dependencies_come_from_the_lock() -> None:
    runs = [args for keyword, args in instructions(DOCKERFILE.read_text()) if keyword == "RUN"]
    syncs = [r for r in runs if "uv sync" in r]
    assert syncs and all("--frozen" in r and "--no-dev" in r for r in syncs)
    assert not any(re.search(r"pip install(?! \"uv==)", r) for r in runs), runs


def test_runs_as_non_root_with_a_healthcheck_and_uvicorn() -> None:
    stage = final_stage()
    keywords = [k for k, _ in stage]
    user = [args for k, args in stage if k == "USER"]
    assert user and user[-1].split(":")[0] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    health = next(args for k, args in stage if k == "HEALTHCHECK")
    assert "http://127.0.0.1:8000/health" in health and "--start-period" in health
    command = exec_form(next(args for k, args in reversed(stage) if k == "CMD"))
    assert command[0] == "uvicorn" and "--factory" in command
    assert command[command.index("--port") + 1] == "8000"
    assert ("EXPOSE", "8000") in stage
    module, _, factory = command[1].partition(":")
    assert callable(getattr(importlib.import_module(module), factory))
    # The model is verified at build time: a mismatched model never becomes an image.
    assert ("RUN", "python -m mlops_template serve --check") in stage


def copied_sources() -> list[str]:
    sources = []
    for keyword, args in final_stage():
        if keyword == "COPY" and not args.startswith("--from"):
            *files, _dest = args.split()
            sources += files
    return sources


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore semantics for these patterns: the last matching line wins."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").rstrip("/")
        if fnmatch.fnmatch(path, body) or path.startswith(body + "/"):
            result = not negate
    return result


def test_model_files_are_baked_in_and_not_ignored() -> None:
    sources = copied_sources()
    assert sorted(sources) == sorted(SERVED_FILES)
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    build_context = ["pyproject.toml", "uv.lock", "README.md", "src/mlops_template/serve.py"]
    for path in [*sources, *build_context]:
        assert not ignored(path, patterns), f"{path} is excluded by .dockerignore"
    for path in (".git/config", ".venv/bin/python", ".dvc/cache/x", "data/raw/dataset.parquet"):
        assert ignored(path, patterns), f"{path} would be sent to the build"


@pytest.mark.slow
def test_make_run_produces_every_file_the_image_needs(built_project: Path) -> None:
    for path in copied_sources():
        assert (built_project / path).is_file(), f"{path} missing after dvc repro"
    result = run(["python", "-m", "mlops_template", "serve", "--check"], built_project)
    assert "ready to serve" in result.stderr


def test_make_serve_runs_the_server_on_port() -> None:
    dry = run(["make", "-n", "serve", "PORT=4321"], TEMPLATE_ROOT)
    assert "python -m mlops_template serve --host 127.0.0.1 --port 4321" in dry.stdout
