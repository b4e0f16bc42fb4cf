"""`pr`: open a pull request with files changed here (`make train-pr` runs it)."""

from __future__ import annotations

import typer

from mlops_template.commands.common import EXIT_USER_ERROR
from mlops_template.log import get_logger

logger = get_logger("pull_request")


def pr(
    files: list[str] = typer.Argument(..., help="Files (or folders) the pull request carries."),
    title: str = typer.Option(..., "--title"),
    message: str = typer.Option(
        ..., "--message", help="Commit message (CML's default adds [skip ci]: no PR check)."
    ),
    body: str = typer.Option(..., "--body"),
    branch: str = typer.Option(None, "--branch", help="Head branch (default: CML's name)."),
    target_branch: str = typer.Option(
        None, "--target-branch", help="Base branch (default: the repository's default)."
    ),
) -> None:
    """`cml pr create` from a throw-away clone; nothing to do when FILES are as committed.
    Needs REPO_TOKEN; the repository is GITHUB_REPOSITORY's, else origin's."""
    from mlops_template.pull_request import (
        PullRequest,
        PullRequestError,
        changed,
        open_pull_request,
    )

    try:
        if not changed(files):
            logger.info(
                "%s are as committed: nothing was retrained, no pull request", " ".join(files)
            )
            return
        request = PullRequest(title, message, body, branch=branch, target_branch=target_branch)
        open_pull_request(request, files)
    except PullRequestError as exc:
        logger.error("%s", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None


def register(app: typer.Typer) -> None:
    app.command()(pr)
