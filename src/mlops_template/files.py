"""Small file helpers shared by the stage commands (JSON in, JSON out, parents created).

Writes never modify an existing file in place: they write a temporary file next to the
target and rename it over the target. DVC links outputs to its cache (hardlinks here), so
an in-place write to a checked-out output would silently change the cached copy too.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it over `path`.

    The rename replaces the directory entry, never the old file's content, so a hardlink
    to the DVC cache is left intact. On error the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: Path, payload: Any) -> None:
    write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def json_number(value: float | None) -> float | None:
    """JSON has no NaN: undefined numbers are written as null."""
    return None if value is None or not math.isfinite(value) else float(value)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def remove(*targets: Path) -> None:
    """Delete files or directories if present (a stage clears its outputs before writing,
    as `dvc repro` does, so a failed run never leaves stale results behind)."""
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
