"""A real PostgreSQL server for the tests, from Debian's `postgresql` package (.ci/run
installs it): a throw-away cluster (initdb) listening on a unix socket only, fsync off.
PostgreSQL refuses to run as root, so as root the server runs as the package's
`postgres` user (runuser)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def server_bin() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


def why_not() -> str | None:
    """Why no server can be started here (None: it can)."""
    if server_bin() is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does)"
    if os.getuid() == 0 and (shutil.which("runuser") is None or not _has_user("postgres")):
        return "as root, the server needs runuser and the package's `postgres` user"
    return None


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


@contextmanager
def server() -> Iterator[str]:
    """Start a cluster; yields the URL of its `postgres` database (unix socket)."""
    binaries = server_bin()
    assert binaries is not None, why_not()
    # not under pytest's tmp dir: the `postgres` user must be able to reach it
    base = Path(tempfile.mkdtemp(prefix="mlops-pg-"))
    data, socket_dir, log = base / "data", base / "socket", base / "server.log"
    socket_dir.mkdir()
    prefix: list[str] = []
    if os.getuid() == 0:
        prefix = ["runuser", "-u", "postgres", "--"]
        for path in (base, socket_dir):
            shutil.chown(path, "postgres", "postgres")
    user = "postgres"

    def pg(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*prefix, *args], capture_output=True, text=True, timeout=120, cwd=base
        )
        if result.returncode != 0:
            server_log = log.read_text() if log.is_file() else ""
            raise AssertionError(f"{args[0]} failed:\n{result.stdout}{result.stderr}{server_log}")
        return result

    pg(str(binaries / "initdb"), "-D", str(data), "-U", user, "-A", "trust", "-E", "UTF8",
       "--no-sync", "--no-instructions")  # fmt: skip
    options = f"-k {socket_dir} -c listen_addresses='' -c fsync=off -c max_connections=50"
    pg(str(binaries / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "start")
    try:
        yield f"postgresql://{user}@/postgres?host={socket_dir}"
    finally:
        subprocess.run(
            [*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(base, ignore_errors=True)


def new_database(url: str) -> str:
    """A fresh, empty database on the server of `url`; its URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return url.replace("/postgres?", f"/{name}?", 1)
