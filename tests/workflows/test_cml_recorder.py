"""The `cml` recorder fails where CML 0.20 fails: no repository, no token.

CML's constructor (src/cml.js) takes the repository from `--repo` / CML_REPO, else from
`git config --get remote.origin.url`, and the GitHub driver throws "token not found"
without `--token` / CML_TOKEN / REPO_TOKEN / GITHUB_TOKEN (...). The act tests' claims that
a workflow "posts the comment" rest on the recorder refusing what CML refuses."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from tests.workflows.act import STANDINS

RECORDER = STANDINS / "iterative" / "setup-cml" / "bin" / "cml"
URL = "https://github.com/acme/demo"
TOKEN_VARIABLES = ["REPO_TOKEN", "repo_token", "GITHUB_TOKEN", "GITLAB_TOKEN", "BITBUCKET_TOKEN"]
CLEARED = ["CML_REPO", "CML_TOKEN", *TOKEN_VARIABLES, "GITHUB_REPOSITORY"]


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def cml(
    cwd: Path, *args: str, **env: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    """Runs the recorder in `cwd` with only the given CML-relevant variables set."""
    log = cwd.parent / f"{cwd.name}.jsonl"
    base = {k: v for k, v in os.environ.items() if k not in CLEARED}
    base.update(CML_RECORDER_LOG=str(log), GIT_CONFIG_NOSYSTEM="1", HOME=str(cwd.parent))
    done = subprocess.run(
        [str(RECORDER), *args], cwd=cwd, env={**base, **env}, capture_output=True, text=True
    )
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return done, calls


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "report.md").write_text("# Report\n")
    return work


COMMENT = ("comment", "update", "--target=pr/7", "report.md")


def test_without_repo_flag_env_or_origin_it_fails_and_records_nothing(workdir: Path) -> None:
    done, calls = cml(workdir, *COMMENT, REPO_TOKEN="t")
    assert done.returncode == 1 and "repo not found" in done.stderr
    assert calls == []


def test_a_remote_not_named_origin_does_not_count(workdir: Path) -> None:
    # act's workspace copy has the remote `github`, a GitHub checkout has `origin`.
    git(workdir, "init", "-q")
    git(workdir, "remote", "add", "github", URL)
    done, calls = cml(workdir, *COMMENT, REPO_TOKEN="t")
    assert done.returncode == 1 and "origin" in done.stderr and calls == []


def test_origin_gives_the_repo_without_credentials_or_dot_git(workdir: Path) -> None:
    git(workdir, "init", "-q")
    git(
        workdir, "remote", "add", "origin", "https://x-access-token:s3cret@github.com/acme/demo.git"
    )
    done, (call,) = cml(workdir, *COMMENT, REPO_TOKEN="t")
    assert done.returncode == 0, done.stderr
    assert call["repo"] == URL and call["pr"] == "7"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_repo_from_flag_or_cml_repo(workdir: Path, how: str) -> None:
    extra = ("--repo=" + URL + "/",) if how == "flag" else ()
    env = {"CML_REPO": URL + ".git"} if how == "env" else {}
    done, (call,) = cml(workdir, *COMMENT[:3], *extra, COMMENT[3], REPO_TOKEN="t", **env)
    assert done.returncode == 0, done.stderr
    assert call["repo"] == URL


def test_a_slug_is_not_a_repo_url(workdir: Path) -> None:
    done, calls = cml(workdir, *COMMENT, "--repo=acme/demo", REPO_TOKEN="t")
    assert done.returncode == 1 and "must be a URL" in done.stderr and calls == []


@pytest.mark.parametrize(
    "command", [COMMENT, ("runner", "launch", "--cloud=aws"), ("pr", "create")]
)
def test_without_a_token_every_command_fails(workdir: Path, command: tuple[str, ...]) -> None:
    done, calls = cml(workdir, *command, f"--repo={URL}", GITHUB_REPOSITORY="acme/demo")
    assert done.returncode == 1 and "token not found" in done.stderr
    assert calls == []


@pytest.mark.parametrize("variable", ["CML_TOKEN", *TOKEN_VARIABLES])
def test_each_token_variable_cml_reads_is_enough(workdir: Path, variable: str) -> None:
    done, (call,) = cml(workdir, *COMMENT, f"--repo={URL}", **{variable: "t"})
    assert done.returncode == 0, done.stderr
    assert call["token"] is True


def test_token_flag_is_enough_and_an_unrelated_variable_is_not(workdir: Path) -> None:
    refused, _ = cml(workdir, *COMMENT, f"--repo={URL}", GH_TOKEN="t")
    assert refused.returncode == 1 and "token not found" in refused.stderr
    done, (call,) = cml(workdir, *COMMENT, f"--repo={URL}", "--token=t")
    assert call["flags"]["token"] == "t"
    assert done.returncode == 0, done.stderr


def test_pr_create_needs_the_remote_it_pushes_to_and_records_what_changed(workdir: Path) -> None:
    # The GitHub driver runs `git remote set-url origin <url with token>` before pushing:
    # --repo alone is not enough for `pr create`, the clone needs that remote too.
    git(workdir, "init", "-q")
    (workdir / "dvc.lock").write_text("v1\n")
    git(workdir, "add", "dvc.lock")
    git(workdir, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "v1")
    (workdir / "dvc.lock").write_text("v2\n")
    create = ("pr", "create", f"--repo={URL}", "dvc.lock")
    refused, calls = cml(workdir, *create, REPO_TOKEN="t")
    assert refused.returncode == 1 and "No such remote 'origin'" in refused.stderr
    assert calls == []
    git(workdir, "remote", "add", "origin", URL)
    done, (call,) = cml(workdir, *create, REPO_TOKEN="t")
    assert done.returncode == 0, done.stderr
    assert call["changed"] == ["dvc.lock"]
    other, _ = cml(workdir, *create, "--remote=upstream", REPO_TOKEN="t")
    assert other.returncode == 1 and "No such remote 'upstream'" in other.stderr
