#!/usr/bin/env python3
"""Stand-in for actions/download-artifact under act (host mode).

Reads $ACT_STANDIN_STORE/artifacts/<run-id>/<name>/ (the upload stand-in's layout).
As with the real action (v4+): downloading from another run needs `github-token`; with
`name` the files land directly in `path`, without it every artifact of the run lands in
`path/<name>/`. Other repositories are not supported.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def fail(message: str) -> None:
    print(f"::error::download-artifact stand-in: {message}")
    sys.exit(1)


def main() -> None:
    store = os.environ.get("ACT_STANDIN_STORE") or fail("ACT_STANDIN_STORE is not set")
    workspace = Path(os.environ["GITHUB_WORKSPACE"])
    current_run = os.environ["GITHUB_RUN_ID"]
    run_id = os.environ.get("INPUT_RUN_ID") or current_run
    repository = os.environ.get("INPUT_REPOSITORY") or os.environ["GITHUB_REPOSITORY"]
    if repository != os.environ["GITHUB_REPOSITORY"]:
        fail(f"downloading from another repository ({repository}) is not supported")
    if run_id != current_run and not os.environ.get("INPUT_GITHUB_TOKEN"):
        fail("github-token is required to download an artifact of another run (run-id)")
    run_dir = Path(store) / "artifacts" / run_id
    dest = Path(os.path.expanduser(os.environ.get("INPUT_PATH") or "."))
    dest = dest if dest.is_absolute() else workspace / dest
    name = os.environ.get("INPUT_NAME")
    if name:
        source = run_dir / name
        if not source.is_dir():
            fail(f"Unable to download artifact(s): Artifact not found for name: {name}")
        shutil.copytree(source, dest, dirs_exist_ok=True)
    else:
        for source in sorted(p for p in run_dir.glob("*") if p.is_dir()):
            shutil.copytree(source, dest / source.name, dirs_exist_ok=True)
    print(f"Artifact(s) of run {run_id} downloaded to {dest}")
    with open(os.environ["GITHUB_OUTPUT"], "a") as out:
        out.write(f"download-path={dest}\n")


if __name__ == "__main__":
    main()
