#!/usr/bin/env python3
"""Stand-in for actions/upload-artifact under act (host mode).

Stores the files in $ACT_STANDIN_STORE/artifacts/<GITHUB_RUN_ID>/<name>/, laid out as
the real action lays out the zip: relative to the least common ancestor of the search
paths. Globs and `!` exclusions, `if-no-files-found`, `include-hidden-files` and
`overwrite` behave as documented for upload-artifact v4+.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
from pathlib import Path

GLOB_CHARS = set("*?[")


def fail(message: str) -> None:
    print(f"::error::upload-artifact stand-in: {message}")
    sys.exit(1)


def search_root(pattern: str, workspace: Path) -> Path:
    """The part of a pattern before its first glob segment (a file's folder)."""
    parts: list[str] = []
    for part in Path(pattern).parts:
        if GLOB_CHARS & set(part):
            break
        parts.append(part)
    root = workspace.joinpath(*parts) if parts else workspace
    return root if root.is_dir() else root.parent


def matches(pattern: str, workspace: Path) -> set[Path]:
    found: set[Path] = set()
    for hit in glob.glob(str(workspace / pattern), recursive=True, include_hidden=True):
        path = Path(hit)
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file())
        elif path.is_file():
            found.add(path)
    return found


def main() -> None:
    store = os.environ.get("ACT_STANDIN_STORE") or fail("ACT_STANDIN_STORE is not set")
    workspace = Path(os.environ["GITHUB_WORKSPACE"])
    name = os.environ.get("INPUT_NAME") or "artifact"
    patterns = [p.strip() for p in os.environ.get("INPUT_PATH", "").splitlines() if p.strip()]
    if not patterns:
        fail("input 'path' is required")
    include = [p for p in patterns if not p.startswith("!")]
    exclude = [p[1:] for p in patterns if p.startswith("!")]
    files = set().union(*(matches(p, workspace) for p in include))
    files -= set().union(set(), *(matches(p, workspace) for p in exclude))
    root = Path(os.path.commonpath([search_root(p, workspace) for p in include]))
    if os.environ.get("INPUT_INCLUDE_HIDDEN_FILES") != "true":
        files = {
            f for f in files if not any(part.startswith(".") for part in f.relative_to(root).parts)
        }
    if not files:
        mode = os.environ.get("INPUT_IF_NO_FILES_FOUND") or "warn"
        message = f"No files were found with the provided path: {' '.join(patterns)}. No artifacts will be uploaded."
        if mode == "error":
            fail(message)
        if mode == "warn":
            print(f"::warning::{message}")
        return
    target = Path(store) / "artifacts" / os.environ["GITHUB_RUN_ID"] / name
    if target.exists():
        if os.environ.get("INPUT_OVERWRITE") != "true":
            fail(
                f"Failed to CreateArtifact: an artifact with this name already exists on the workflow run: {name}"
            )
        shutil.rmtree(target)
    for file in sorted(files):
        dest = target / file.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, dest)
    print(f"Uploaded {len(files)} file(s) as artifact {name!r}")
    with open(os.environ["GITHUB_OUTPUT"], "a") as out:
        out.write(f"artifact-id={abs(hash(str(target))) % 10**9}\n")
        repo, run = os.environ["GITHUB_REPOSITORY"], os.environ["GITHUB_RUN_ID"]
        out.write(
            f"artifact-url={os.environ['GITHUB_SERVER_URL']}/{repo}/actions/runs/{run}/artifacts\n"
        )


if __name__ == "__main__":
    main()
