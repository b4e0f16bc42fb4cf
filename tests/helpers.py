"""Helpers shared by the test tiers: run real commands, make throw-away project copies.

Two kinds of tests (README, "Tests"): the template's own tests run on fixtures
(tests/fixtures/: FIXTURE_PARAMS, fixture data) and on copies made by `copy_template`,
which carry those fixtures instead of the project's params.yaml and data/, so they stay
green whatever a fork changes there; tests/project/ checks the project's own params.yaml
and data (`copy_template(..., as_project=True)`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

TEMPLATE_ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
FIXTURES = TEMPLATE_ROOT / "tests" / "fixtures"
# The template's default params.yaml, frozen: what the template's own tests run with.
FIXTURE_PARAMS = FIXTURES / "params.yaml"
# A real-world-like CSV (a frozen copy of examples/churn/churn.csv, which `make init`
# removes): target `churn`, id column `customer_id`.
FIXTURE_CHURN_CSV = FIXTURES / "data" / "churn.csv"


def uv_binary() -> str:
    """The uv `make` uses, found as the Makefile finds it (`command -v uv`, else the one it
    bootstrapped into .tools/bin/), else the uv running this session (`uv run` sets UV)."""
    for found in (
        shutil.which("uv"),
        TEMPLATE_ROOT / ".tools" / "bin" / "uv",
        os.environ.get("UV"),
    ):
        if found and os.access(found, os.X_OK):
            return str(found)
    raise AssertionError(
        f"no uv: not on PATH, not at {TEMPLATE_ROOT / '.tools/bin/uv'} (`make install` "
        "bootstraps it there) and UV is not set"
    )


def path_without(program: str, shadow: Path, path: str | None = None) -> str:
    """PATH (default: this process's) on which `program` cannot be found, as on a machine
    where it was never installed: each directory holding it is replaced by a directory
    (under `shadow`) of links to everything else in it."""
    entries = []
    for index, entry in enumerate((os.environ["PATH"] if path is None else path).split(os.pathsep)):
        folder = Path(entry)
        if not entry or not (folder / program).exists():
            entries.append(entry)
            continue
        twin = shadow / str(index)
        twin.mkdir(parents=True, exist_ok=True)
        for item in folder.iterdir():
            if item.name != program and not os.path.lexists(twin / item.name):
                (twin / item.name).symlink_to(item)
        entries.append(str(twin))
    result = os.pathsep.join(entries)
    assert shutil.which(program, path=result) is None, result
    return result


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


def _is_project_data(rel: str) -> bool:
    """The project's own data (data/...), which template tests never see; .gitkeep stays."""
    return rel.startswith("data/") and not rel.endswith("/.gitkeep")


def copy_template(
    dest: Path, init_git: bool = True, dvc_cache: Path | None = None, as_project: bool = False
) -> Path:
    """A fresh copy of the template in `dest` (a new git repo with one commit).

    By default the copy has the template's fixtures in place of the project's own
    choices (FIXTURE_PARAMS as params.yaml, nothing in data/): what the template's tests
    build on, whatever a fork changed. as_project=True: the project as it is, its
    params.yaml and everything under data/external/ (git-ignored files included, e.g.
    data tracked by DVC), for the project's own checks (tests/project/)."""
    dest.mkdir(parents=True, exist_ok=True)
    files = [rel for rel in tracked_files() if as_project or not _is_project_data(rel)]
    if as_project:
        external = TEMPLATE_ROOT / "data" / "external"
        files += [
            p.relative_to(TEMPLATE_ROOT).as_posix() for p in external.rglob("*") if p.is_file()
        ]
    for rel in dict.fromkeys(files):
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(TEMPLATE_ROOT / rel, target)
    if not as_project:
        shutil.copyfile(FIXTURE_PARAMS, dest / "params.yaml")
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
