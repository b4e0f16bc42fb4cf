"""The throw-away clone `cml pr create` runs in, and what the callers must provide."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from mlops_template import pull_request as pr


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, text=True, capture_output=True, check=True)
    return done.stdout


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    repo = tmp_path / "checkout"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "dvc.lock").write_text("v1\n")
    (repo / "params.yaml").write_text("a: 1\n")
    git(repo, "add", ".")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1")
    monkeypatch.chdir(repo)
    for name in ("GITHUB_REPOSITORY", "GITHUB_SERVER_URL", "REPO_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return repo


def test_the_clone_holds_the_changed_files_and_points_origin_at_the_target(checkout: Path) -> None:
    (checkout / "dvc.lock").write_text("v2\n")
    (checkout / "data" / "feedback").mkdir(parents=True)
    (checkout / "data" / "feedback" / "new.csv").write_text("x\n")
    files = pr.changed(["dvc.lock", "params.yaml", "data/feedback"])
    assert files == ["dvc.lock", "data/feedback/new.csv"]
    with pr.clone_with("https://github.com/octo/repo", files) as clone:
        assert git(clone, "remote", "get-url", "origin").strip() == "https://github.com/octo/repo"
        status = git(clone, "status", "--porcelain", "--untracked-files=all")
        assert status.splitlines() == [" M dvc.lock", "?? data/feedback/new.csv"]
    assert not clone.exists()
    assert git(checkout, "remote").strip() == ""  # the checkout itself is untouched


def test_the_target_is_the_workflows_repository_else_origin(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(pr.PullRequestError, match=r"GITHUB_REPOSITORY .* or add a git remote"):
        pr.target_repository()
    git(checkout, "remote", "add", "origin", "git@github.com:octo/fork.git")
    assert pr.target_repository() == "git@github.com:octo/fork.git"
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/repo")
    assert pr.target_repository() == "https://github.com/octo/repo"
    monkeypatch.setenv("GITHUB_REPOSITORY", "octo/repo) [x](http://evil")
    with pytest.raises(pr.PullRequestError, match="are not a repository"):
        pr.target_repository()


def test_without_repo_token_nothing_is_cloned_or_called(
    checkout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pr, "clone_with", lambda *a: pytest.fail("cloned without a token"))
    request = pr.PullRequest("t", "m", "b")
    with pytest.raises(pr.PullRequestError, match="REPO_TOKEN is not set"):
        pr.open_pull_request(request, ["dvc.lock"])


def test_cml_gets_the_repository_and_a_commit_message() -> None:
    request = pr.PullRequest("T", "M", "B", branch="b", target_branch="main", markdown=True)
    assert request.cml_args("https://github.com/o/r", ["dvc.lock"]) == [
        "cml", "pr", "create", "--repo=https://github.com/o/r", "--target-branch=main",
        "--branch=b", "--title=T", "--message=M", "--body=B", "--md", "dvc.lock",
    ]  # fmt: skip
    plain = pr.PullRequest("T", "M", "B").cml_args("u", ["f"])
    assert plain == ["cml", "pr", "create", "--repo=u", "--title=T", "--message=M", "--body=B", "f"]
