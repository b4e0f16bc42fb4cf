"""Links to the GitHub repository and Actions run a command runs in.

Built only from well-formed runner variables: the values end up in markdown (PR and
issue bodies, registry notes), so a malformed one must not inject a link.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

SERVER = re.compile(r"https?://[A-Za-z0-9.-]+(:\d+)?")
REPOSITORY = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")


def repository_url(env: Mapping[str, str]) -> str | None:
    """GITHUB_SERVER_URL/GITHUB_REPOSITORY (server: github.com when unset)."""
    server = env.get("GITHUB_SERVER_URL") or "https://github.com"
    repository = env.get("GITHUB_REPOSITORY", "")
    if not (SERVER.fullmatch(server) and REPOSITORY.fullmatch(repository)):
        return None
    return f"{server}/{repository}"


def run_url(env: Mapping[str, str]) -> str | None:
    """The GitHub Actions run, when the repository and run id are present and well-formed."""
    repository = repository_url(env)
    run_id = env.get("GITHUB_RUN_ID", "")
    if repository is None or not re.fullmatch(r"\d+", run_id):
        return None
    return f"{repository}/actions/runs/{run_id}"
