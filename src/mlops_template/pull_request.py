"""Open a pull request with files changed in this checkout, through `cml pr create`.

`cml pr create` rewrites the `origin` remote's URL with the token, commits as a bot and
pushes from origin (CML 0.20 src/drivers/github.js): none of that may touch the checkout
it is called from, which need not have an `origin` at all (a workflow's checkout under
act has none). So it runs in a throw-away clone of HEAD whose origin is the target
repository and which receives only the given files. Both the cloud-training PR
(`make train-pr`) and the monitor's retraining PR go through here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlops_template.github import repository_url
from mlops_template.log import get_logger

logger = get_logger(__name__)
CML_TIMEOUT_S = 300  # CML's requests have no timeout of their own


class PullRequestError(RuntimeError):
    """No pull request could be opened; the message says what is missing."""


@dataclass(frozen=True)
class PullRequest:
    title: str
    message: str  # the commit message: CML adds [skip ci] to its default one
    body: str
    branch: str | None = None
    target_branch: str | None = None
    markdown: bool = False  # --md: the returned URL as a markdown link

    def cml_args(self, repo_url: str, paths: Sequence[str]) -> list[str]:
        args = ["cml", "pr", "create", f"--repo={repo_url}"]
        if self.target_branch:
            args.append(f"--target-branch={self.target_branch}")
        if self.branch:
            args.append(f"--branch={self.branch}")
        args += [f"--title={self.title}", f"--message={self.message}", f"--body={self.body}"]
        if self.markdown:
            args.append("--md")
        return [*args, *paths]


def target_repository() -> str:
    """The workflow's repository (GITHUB_SERVER_URL/GITHUB_REPOSITORY), else origin's URL."""
    if os.environ.get("GITHUB_REPOSITORY"):
        url = repository_url(os.environ)
        if url is None:
            raise PullRequestError(
                "GITHUB_REPOSITORY/GITHUB_SERVER_URL are not a repository: "
                f"{os.environ.get('GITHUB_SERVER_URL', '')!r} {os.environ['GITHUB_REPOSITORY']!r}"
            )
        return url
    origin = subprocess.run(
        ["git", "remote", "get-url", "origin"], text=True, capture_output=True, check=False
    )
    if origin.returncode != 0 or not origin.stdout.strip():
        raise PullRequestError(
            "no repository to open the PR on: set GITHUB_REPOSITORY (OWNER/NAME) or add a "
            "git remote named origin"
        )
    return origin.stdout.strip()


def changed(paths: Sequence[str]) -> list[str]:
    """Files under `paths` that differ from HEAD, untracked ones included."""
    result = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all", "--", *paths],
        text=True,
        capture_output=True,
        check=True,
    )
    return [line[3:] for line in result.stdout.splitlines() if line.strip()]


@contextlib.contextmanager
def clone_with(repo_url: str, files: Sequence[str]) -> Iterator[Path]:
    """A throw-away clone of HEAD holding `files` as they are here, origin = repo_url."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], text=True, capture_output=True, check=True)
    with tempfile.TemporaryDirectory(prefix="pull-request-") as tmp:
        clone = Path(tmp) / "repo"
        for git_args in (
            ["clone", "--quiet", "--no-checkout", ".", str(clone)],
            ["-C", str(clone), "checkout", "--quiet", "--detach", head.stdout.strip()],
            ["-C", str(clone), "remote", "set-url", "origin", repo_url],
        ):
            subprocess.run(["git", *git_args], text=True, capture_output=True, check=True)
        for name in files:
            target = clone / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(name, target)
        yield clone


def require_token() -> None:
    if not os.environ.get("REPO_TOKEN"):
        raise PullRequestError(
            "REPO_TOKEN is not set: the PR needs a token that may push a branch and open a "
            "PR (a PR opened with the workflow's GITHUB_TOKEN starts no workflow, so it "
            "would get no model report)"
        )


def open_pull_request(
    request: PullRequest, paths: Sequence[str], files: Sequence[str] | None = None
) -> str:
    """Run `cml pr create` on `paths` from a clone that received `files` (default: the
    files changed under `paths`); returns what CML printed (the PR's URL)."""
    require_token()
    if shutil.which("cml") is None:
        raise PullRequestError("`cml` is not on PATH (the workflow's setup-cml step installs it)")
    files = list(files) if files is not None else changed(paths)
    repo_url = target_repository()
    with clone_with(repo_url, files) as clone:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--", *paths],
            cwd=clone,
            text=True,
            capture_output=True,
            check=True,
        )
        into = request.target_branch or "the default branch"
        logger.info("pull request into %s of %s with:\n%s", into, repo_url, status.stdout.rstrip())
        result = subprocess.run(
            request.cml_args(repo_url, paths),
            cwd=clone,
            text=True,
            capture_output=True,
            timeout=CML_TIMEOUT_S,
        )
    if result.returncode != 0:
        raise PullRequestError(f"cml pr create failed: {result.stderr.strip()[-800:]}")
    logger.info("pull request: %s", result.stdout.strip())
    return result.stdout.strip()
