#!/usr/bin/env python3
"""Stand-in for actions/cache/restore and actions/cache/save under act (host mode).

Entries live in $ACT_STANDIN_STORE/cache/<scope>/<key>/ where the scope is the git ref
the entry was saved from (GITHUB_REF), as on GitHub. Restore follows GitHub's rules:
in the run's own ref, then (pull requests) the base branch, then the default branch, it
looks for the exact key, then the newest entry whose key starts with the key, then with
each restore-key in order. `cache-hit` is "true" only for an exact key match. Save never
overwrites an entry (GitHub caches are immutable). Only workspace-relative paths.

Usage (from the composite actions): cache.py restore | cache.py save; inputs in INPUT_*.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from urllib.parse import quote


def fail(message: str) -> None:
    print(f"::error::cache stand-in: {message}")
    sys.exit(1)


def lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def store() -> Path:
    root = os.environ.get("ACT_STANDIN_STORE")
    if not root:
        fail("ACT_STANDIN_STORE is not set (the test harness sets it)")
    return Path(root) / "cache"


def workspace() -> Path:
    return Path(os.environ["GITHUB_WORKSPACE"])


def cache_paths() -> list[str]:
    paths = lines(os.environ.get("INPUT_PATH", ""))
    if not paths:
        fail("input 'path' is required")
    for path in paths:
        if os.path.isabs(path) or path.startswith("~") or ".." in Path(path).parts:
            fail(f"only workspace-relative paths are supported, got {path!r}")
    return paths


def default_branch() -> str:
    event_path = os.environ.get("GITHUB_EVENT_PATH")
    if event_path and Path(event_path).is_file():
        event = json.loads(Path(event_path).read_text())
        branch = (event.get("repository") or {}).get("default_branch")
        if branch:
            return branch
    return "main"


def scopes() -> list[str]:
    ordered = [os.environ["GITHUB_REF"]]
    if os.environ.get("GITHUB_BASE_REF"):
        ordered.append(f"refs/heads/{os.environ['GITHUB_BASE_REF']}")
    ordered.append(f"refs/heads/{default_branch()}")
    return list(dict.fromkeys(ordered))


def entries(scope: str) -> list[dict]:
    folder = store() / quote(scope, safe="")
    found = []
    for meta in folder.glob("*/meta.json"):
        found.append({**json.loads(meta.read_text()), "dir": meta.parent})
    return sorted(found, key=lambda e: e["created_ns"], reverse=True)


def find(key: str, restore_keys: list[str]) -> tuple[dict | None, bool]:
    for scope in scopes():
        candidates = entries(scope)
        for entry in candidates:
            if entry["key"] == key:
                return entry, True
        for prefix in [key, *restore_keys]:
            for entry in candidates:  # newest first
                if entry["key"].startswith(prefix):
                    return entry, False
    return None, False


def set_output(name: str, value: str) -> None:
    with open(os.environ["GITHUB_OUTPUT"], "a") as out:
        out.write(f"{name}={value}\n")


def copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True)
    else:
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)


def restore() -> None:
    key = os.environ.get("INPUT_KEY", "").strip()
    if not key:
        fail("input 'key' is required")
    paths = cache_paths()
    entry, exact = find(key, lines(os.environ.get("INPUT_RESTORE_KEYS", "")))
    set_output("cache-primary-key", key)
    if entry is None:
        if os.environ.get("INPUT_FAIL_ON_CACHE_MISS") == "true":
            fail(
                f"Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: {key}"
            )
        print(f"Cache not found for input keys: {key}")
        set_output("cache-hit", "false")
        return
    if os.environ.get("INPUT_LOOKUP_ONLY") != "true":
        for path in paths:
            src = entry["dir"] / "data" / path
            if src.exists():
                copy(src, workspace() / path)
    print(f"Cache restored from key: {entry['key']} (scope {entry['scope']})")
    set_output("cache-hit", "true" if exact else "false")
    set_output("cache-matched-key", entry["key"])


def save() -> None:
    key = os.environ.get("INPUT_KEY", "").strip()
    if not key:
        fail("input 'key' is required")
    paths = cache_paths()
    scope = os.environ["GITHUB_REF"]
    target = store() / quote(scope, safe="") / quote(key, safe="")
    if target.exists():
        print(
            f"::warning::Failed to save: Unable to reserve cache with key {key}, another job may be creating this cache."
        )
        return
    present = [p for p in paths if (workspace() / p).exists()]
    if not present:
        print(
            "::warning::Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved."
        )
        return
    staging = target.with_name(target.name + f".tmp-{os.getpid()}")
    for path in present:
        copy(workspace() / path, staging / "data" / path)
    meta = {"key": key, "scope": scope, "paths": present, "created_ns": time.time_ns()}
    (staging / "meta.json").write_text(json.dumps(meta))
    staging.rename(target)
    print(f"Cache saved with key: {key} (scope {scope})")


if __name__ == "__main__":
    {"restore": restore, "save": save}[sys.argv[1]]()
