"""The base model of a comparison, rebuilt from git: never read from files a PR could edit.

`obtain_base(ref, root)` checks REF out into a temporary `git worktree`, points that
worktree at the project's DVC cache and runs `dvc repro` there with REF's own code
(`PYTHONPATH=<worktree>/src`). When REF was built before, DVC restores every stage from
its run-cache in about a second; otherwise the stages run. The model (ONNX bytes), schema,
params, metrics and validation summary of REF are read from the worktree, which is then
removed. A ref without a pipeline (no `dvc.yaml`) is "no base model": the first model.

The PR (promotion) gate and the registry use this, so the base's numbers always come from
REF's committed code and data, reproduced, and never from a metrics file in the workspace.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from mlops_template import paths
from mlops_template.files import read_json
from mlops_template.log import get_logger

logger = get_logger("worktree")

BaseStatus = Literal["ok", "no_pipeline", "failed"]
REPRO_TIMEOUT_SECONDS = 3600
WORKTREES_DIR = Path(".dvc/tmp/worktrees")  # same filesystem as the cache: hardlinks work
_RAN = re.compile(r"^Running stage '([^']+)'", re.MULTILINE)
_RESTORED = re.compile(r"^Stage '([^']+)' is cached", re.MULTILINE)


class BaseRefError(ValueError):
    """The base ref is not usable (not a commit here, or not a git repository)."""


@dataclass(frozen=True)
class BaseArtifacts:
    """What the comparison needs of the base model, or why there is none."""

    ref: str
    commit: str | None
    status: BaseStatus
    reason: str = ""  # why there is no base model ("" when status is ok)
    onnx: bytes | None = None
    schema: dict[str, Any] | None = None
    params: dict[str, Any] | None = None  # REF's params.yaml as written (not validated)
    metrics: dict[str, Any] | None = None  # REF's own evaluation, on REF's test set
    validation: dict[str, Any] | None = None
    seconds: float = 0.0
    stages_run: list[str] = field(default_factory=list)  # stages DVC executed
    stages_restored: list[str] = field(default_factory=list)  # restored from run-cache

    @property
    def available(self) -> bool:
        return self.status == "ok" and self.onnx is not None and self.schema is not None

    @property
    def data_hash(self) -> str | None:
        return None if self.schema is None else self.schema.get("dataset_hash")


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", *args],
        cwd=root,
        text=True,
        capture_output=True,
        check=check,
    )


def resolve_commit(ref: str, root: Path) -> str:
    """The full SHA of REF, or BaseRefError naming the ref and the likely fix."""
    if not ref or ref.startswith("-") or any(c.isspace() for c in ref):
        raise BaseRefError(f"--base {ref!r}: not a valid git ref")
    inside = _git(root, "rev-parse", "--is-inside-work-tree", check=False)
    if inside.returncode != 0:
        raise BaseRefError(f"{root}: not a git repository; the base model is built from git")
    found = _git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
    if found.returncode != 0:
        raise BaseRefError(
            f"--base {ref!r}: no such commit in this repository (a shallow clone? "
            f"fetch it first, e.g. `git fetch origin {ref}`)"
        )
    return found.stdout.strip()


def has_file(commit: str, path: str, root: Path) -> bool:
    return _git(root, "cat-file", "-e", f"{commit}:{path}", check=False).returncode == 0


def cache_dir(root: Path) -> Path:
    """The project's DVC cache directory, as DVC resolves it (all config levels)."""
    from dvc.config import Config

    config = Config(dvc_dir=str((root / ".dvc").resolve()))
    configured = config.get("cache", {}).get("dir")
    return Path(configured) if configured else (root / ".dvc" / "cache").resolve()


@contextmanager
def temporary_worktree(commit: str, root: Path, prefix: str = "base-") -> Iterator[Path]:
    """A detached worktree of COMMIT under .dvc/tmp/, removed afterwards whatever happens."""
    parent = root / WORKTREES_DIR
    parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        _git(root, "worktree", "add", "--detach", "--quiet", str(path), commit)
        yield path
    finally:
        removed = _git(root, "worktree", "remove", "--force", str(path), check=False)
        if removed.returncode != 0 or path.exists():
            shutil.rmtree(path, ignore_errors=True)
            _git(root, "worktree", "prune", check=False)


def repro_env(worktree: Path) -> dict[str, str]:
    """REF's code (its src/ first on the import path) with this environment's tools."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(worktree / "src")
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("GIT_DIR", None)
    env.pop("GIT_WORK_TREE", None)
    return env


def repro_in_worktree(
    tree: Path, root: Path, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """`dvc repro` in TREE, a temporary worktree of ROOT, with that commit's own code and
    ROOT's DVC cache (what ROOT already built is restored, not rerun). Raises
    subprocess.TimeoutExpired after `timeout` seconds."""
    share_dvc_config(tree, root)
    return dvc_in_worktree(tree, "repro", timeout=timeout)


def share_dvc_config(tree: Path, root: Path) -> None:
    """TREE's local DVC config: ROOT's (its remotes and their credentials, relative paths
    still pointing where they point from ROOT) with ROOT's cache, so what TREE fetches or
    builds lands in the cache ROOT uses."""
    from dvc.config import Config

    source = Config(dvc_dir=str((root / ".dvc").resolve()), validate=False).load_one("local")
    with Config(dvc_dir=str((tree / ".dvc").resolve()), validate=False).edit("local") as conf:
        conf.update({key: value for key, value in source.items() if value})
        conf.setdefault("cache", {})["dir"] = str(cache_dir(root))


def dvc_in_worktree(
    tree: Path, *args: str, timeout: float | None = None
) -> subprocess.CompletedProcess[str]:
    """`dvc ARGS` in TREE with its own code first on the import path (repro_env)."""
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=tree,
        env=repro_env(tree),
        text=True,
        capture_output=True,
        timeout=timeout,
    )


class OutputsUnavailable(RuntimeError):
    """Pipeline outputs of a commit that are in neither the DVC cache nor the remote (and
    were not, or could not be, rebuilt)."""

    def __init__(self, missing: list[str], tries: dict[str, str]) -> None:
        shown = "; ".join(f"dvc {how}: {why}" for how, why in tries.items())
        super().__init__(f"{', '.join(missing)}: {shown}")
        self.missing = missing
        self.tries = tries  # dvc command -> what it said


_DVC_NOISE = ("Is your cache up to date?", "<https://error.dvc.org/", "Everything is up to date.")


def dvc_said(output: str, lines: int = 4) -> str:
    """DVC's last lines as one line, without its boilerplate hints."""
    kept = [
        line.strip()
        for line in output.strip().splitlines()
        if line.strip() and not line.strip().startswith(_DVC_NOISE)
    ]
    return " ".join(kept[-lines:]) or "no message"


def locked_outputs(tree: Path) -> set[str]:
    """The output paths TREE's dvc.lock records (what `dvc checkout` can restore)."""
    lock = tree / "dvc.lock"
    if not lock.is_file():
        return set()
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages") or {}
    return {
        str(out["path"])
        for stage in stages.values()
        if isinstance(stage, dict)
        for out in stage.get("outs") or []
        if isinstance(out, dict) and "path" in out
    }


def restore_outputs(
    tree: Path,
    root: Path,
    targets: list[str],
    rebuild: bool = False,
    optional: list[str] | None = None,
    timeout: float = REPRO_TIMEOUT_SECONDS,
    accept: Callable[[Path], str | None] | None = None,
) -> str:
    """Make TARGETS (files of TREE, a temporary worktree of ROOT) present without running
    anything when possible: in git already, else `dvc checkout` from ROOT's cache, else
    `dvc pull` from the DVC remote (ROOT's remotes and credentials), else, with REBUILD,
    `dvc repro` with TREE's code (the run-cache restores what was built before). OPTIONAL
    files are fetched along when they can be, and never required. ACCEPT(TREE) judges the
    files a source gave (None: they will do; else why not): files it refuses count as not
    found there, so the next source is tried. That matters when the commit's dvc.lock is
    stale (params committed without it): the cache then holds the lock's old outputs, and
    only a rebuild gives the outputs of the commit's code and params. Returns where TARGETS
    came from: "git", "cache", "remote" or "rebuilt"; raises OutputsUnavailable naming
    the files still missing (or refused) and why."""

    def absent(files: list[str]) -> list[str]:
        return [t for t in files if not (tree / t).is_file()]

    def refused() -> str | None:
        return None if accept is None else accept(tree)

    tries: dict[str, str] = {}
    missing = absent(targets)
    if not missing:
        if (why := refused()) is None:
            return "git"
        tries["git"] = why
        missing = list(targets)
    share_dvc_config(tree, root)
    for source, command in (("cache", "checkout"), ("remote", "pull")):
        wanted = missing + absent(optional or [])
        result = dvc_in_worktree(tree, command, *wanted, timeout=timeout)
        if not absent(missing):
            if (why := refused()) is None:
                return source
            tries[command] = why
            continue
        missing = absent(missing)
        tries[command] = dvc_said(result.stdout + result.stderr)
    if rebuild:
        logger.info("rebuilding %s with `dvc repro` in a temporary worktree", ", ".join(missing))
        try:
            result = dvc_in_worktree(tree, "repro", timeout=timeout)
        except subprocess.TimeoutExpired:
            tries["repro"] = f"took more than {timeout:.0f}s"
            raise OutputsUnavailable(missing, tries) from None
        missing = absent(missing)
        if result.returncode == 0 and not missing:
            if (why := refused()) is None:
                return "rebuilt"
            tries["repro"] = why
        else:
            tries["repro"] = dvc_said(result.stdout + result.stderr, 8)
    raise OutputsUnavailable(missing, tries)


def _read_optional_json(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.is_file() else None


def tail(text: str, lines: int = 15) -> str:
    """The last `lines` lines of a tool's output (what an error message quotes)."""
    return "\n".join(text.strip().splitlines()[-lines:])


def obtain_base(ref: str, root: Path, timeout: float = REPRO_TIMEOUT_SECONDS) -> BaseArtifacts:
    """Reproduce REF in a temporary worktree sharing the DVC cache and return its model.

    Raises BaseRefError when REF is not a commit of the repository at ROOT. A REF without
    `dvc.yaml` gives status "no_pipeline"; a REF whose pipeline fails or produces no model
    gives status "failed" with the reason (DVC's last lines).
    """
    started = time.perf_counter()
    root = root.resolve()
    commit = resolve_commit(ref, root)

    def done(status: BaseStatus, reason: str = "", **found: Any) -> BaseArtifacts:
        return BaseArtifacts(
            ref, commit, status, reason, seconds=time.perf_counter() - started, **found
        )

    if not has_file(commit, "dvc.yaml", root):
        return done("no_pipeline", f"{ref} ({commit[:8]}) has no dvc.yaml: no base model")
    with temporary_worktree(commit, root) as tree:
        if not (tree / ".dvc").is_dir():
            return done("no_pipeline", f"{ref} ({commit[:8]}) is not a DVC project (no .dvc/)")
        logger.info("reproducing base %s (%s) in a temporary worktree", ref, commit[:8])
        try:
            result = repro_in_worktree(tree, root, timeout)
        except subprocess.TimeoutExpired:
            return done("failed", f"dvc repro of {ref} took more than {timeout:.0f}s")
        output = result.stdout + result.stderr
        ran, restored = _RAN.findall(output), _RESTORED.findall(output)
        if result.returncode != 0:
            return done(
                "failed",
                f"dvc repro of {ref} ({commit[:8]}) failed:\n{tail(output)}",
                stages_run=ran,
                stages_restored=restored,
            )
        onnx, schema = tree / paths.MODEL_ONNX, tree / paths.SCHEMA
        if not onnx.is_file() or not schema.is_file():
            return done(
                "failed",
                f"{ref} ({commit[:8]}) produced no {paths.MODEL_ONNX} and {paths.SCHEMA}",
                stages_run=ran,
                stages_restored=restored,
            )
        params_file = tree / paths.PARAMS
        params = yaml.safe_load(params_file.read_text()) if params_file.is_file() else {}
        return done(
            "ok",
            onnx=onnx.read_bytes(),
            schema=read_json(schema),
            params=params if isinstance(params, dict) else {},
            metrics=_read_optional_json(tree / paths.METRICS),
            validation=_read_optional_json(tree / paths.VALIDATION_REPORT_JSON),
            stages_run=ran,
            stages_restored=restored,
        )
