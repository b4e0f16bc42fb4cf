"""Helpers shared by the test tiers: run real commands, make throw-away project copies."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def uv_binary() -> str:
    """The uv that built this environment: on PATH, or bootstrapped by the Makefile."""
    found = shutil.which("uv")
    return found or str(TEMPLATE_ROOT / ".tools" / "bin" / "uv")


def link_venv(project: Path) -> None:
    """Let `make` targets in a project copy use this test run's environment (no re-install)."""
    (project / ".venv").symlink_to(VENV_BIN.parent, target_is_directory=True)


def tool_env(**extra: str) -> dict[str, str]:
    """Environment for subprocesses: the project's venv first on PATH, no analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["DVC_NO_ANALYTICS"] = "1"
    env["ITERATIVE_DO_NOT_TRACK"] = "1"
    env.setdefault("GIT_AUTHOR_NAME", "test")
    env.setdefault("GIT_AUTHOR_EMAIL", "test@example.com")
    env.setdefault("GIT_COMMITTER_NAME", "test")
    env.setdefault("GIT_COMMITTER_EMAIL", "test@example.com")
    env.update(extra)
    return env


def run(
    args: list[str] | str, cwd: Path, check: bool = True, timeout: float = 900, **extra_env: str
) -> subprocess.CompletedProcess[str]:
    """Run a command; on an unexpected exit code, fail with its whole output."""
    result = subprocess.run(
        args,
        cwd=cwd,
        env=tool_env(**extra_env),
        text=True,
        capture_output=True,
        timeout=timeout,
        shell=isinstance(args, str),
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{args!r} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
        )
    return result


def tracked_files(root: Path = TEMPLATE_ROOT) -> list[str]:
    """The template as git sees it (tracked + untracked-not-ignored): what a fork gets."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        text=True,
        capture_output=True,
        check=True,
    ).stdout
    return [f for f in out.split("\0") if f and (root / f).is_file()]


def copy_template(dest: Path, init_git: bool = True, dvc_cache: Path | None = None) -> Path:
    """A fresh copy of the template in `dest` (a new git repo with one commit)."""
    dest.mkdir(parents=True, exist_ok=True)
    for rel in tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_ROOT / rel, target)
    if init_git:
        run(["git", "init", "-q", "-b", "main"], dest)
        run(["git", "add", "-A"], dest)
        run(["git", "commit", "-qm", "template"], dest)
    if dvc_cache is not None:
        share_dvc_cache(dest, dvc_cache)
    return dest


def share_dvc_cache(project: Path, cache: Path) -> None:
    """Point a project at a shared DVC cache (local config, not committed)."""
    run(["dvc", "cache", "dir", "--local", str(cache)], project)


def edit_params(project: Path, **changes: object) -> None:
    """edit_params(p, **{"train.model": "logistic_regression"}): set dotted keys."""
    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))
