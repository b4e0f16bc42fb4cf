"""The act harness repeats a run whose failed step lost its output from the state the first
attempt found: what that attempt stored (artifacts, caches, recorded calls) and the
comments it posted are gone before the second one starts.

act itself is replaced by a script here: it cannot be made to lose a step's output."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.workflows import act as harness
from tests.workflows.act import World, make_repo
from tests.workflows.fake_github import FakeGitHub

REPO = "acme/retry-probe"
LOST = "[w/j] ⭐ Run Main Fail on the gate\n[w/j]   ❌  Failure - Main Fail on the gate [1ms]\n"
KEPT = (
    "[w/j] ⭐ Run Main Fail on the gate\n[w/j]   | the gate failed\n"
    "[w/j]   ❌  Failure - Main Fail on the gate [1ms]\n"
)


class FakeAct:
    """Each call is one attempt: it finds the store and the fake GitHub as they are, writes
    an artifact and posts a comment as a workflow would, and prints `outputs[i]`."""

    def __init__(self, world: World, github: FakeGitHub, outputs: list[tuple[int, str]]):
        self.world, self.github, self.outputs = world, github, outputs
        self.seen: list[dict[str, Any]] = []

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        run_id = next(a.split("=", 1)[1] for a in args if a.startswith("GITHUB_RUN_ID="))
        artifact = self.world.store / "artifacts" / run_id / "pr-report" / "report.md"
        self.seen.append(
            {
                "artifact": artifact.exists(),
                "comments": len(self.github.comments(REPO, 1)),
                "requests": len(self.github.requests),
            }
        )
        artifact.parent.mkdir(parents=True, exist_ok=True)
        artifact.write_text("report")
        self.github.add_comment(REPO, 1, "the report", login="github-actions[bot]")
        self.github.requests.append({"method": "POST", "path": "/x", "query": "", "auth": ""})
        code, out = self.outputs[len(self.seen) - 1]
        return subprocess.CompletedProcess(args, code, out, "")


@pytest.fixture
def github() -> Any:
    fake = FakeGitHub("test-token").start()
    fake.open_issue(REPO, 1)
    fake.add_comment(REPO, 1, "a reviewer's comment")
    yield fake
    fake.stop()


def run_with(
    tmp_path: Path, github: FakeGitHub, outputs: list[tuple[int, str]], monkeypatch: Any
) -> tuple[harness.ActResult, FakeAct, World]:
    world = World(tmp_path / "github")
    repo = make_repo(tmp_path / "repo" / "probe", REPO)
    fake = FakeAct(world, github, outputs)
    monkeypatch.setattr(harness.subprocess, "run", fake)
    result = world.act(repo, "push", {"ref": "refs/heads/main"}, "ci.yaml")
    return result, fake, world


def test_a_run_that_lost_a_steps_output_is_repeated_from_the_state_it_found(
    tmp_path: Path, github: FakeGitHub, monkeypatch: Any
) -> None:
    result, fake, world = run_with(tmp_path, github, [(1, LOST), (1, KEPT)], monkeypatch)
    first = {"artifact": False, "comments": 1, "requests": 0}
    assert fake.seen == [first, first]  # the second attempt saw none of the first's writes
    assert result.output == KEPT and result.returncode == 1
    # what stays is the second attempt's: one artifact, one comment of ours, one request
    assert len(list((world.store / "artifacts").rglob("report.md"))) == 1
    assert [c["body"] for c in github.comments(REPO, 1)] == ["a reviewer's comment", "the report"]
    assert len(github.requests) == 1
    assert not [p for p in world.store.parent.iterdir() if p.name.startswith("world-")]


@pytest.mark.parametrize("code, out", [(0, LOST), (1, KEPT)])
def test_a_run_that_passed_or_failed_with_its_output_is_not_repeated(
    tmp_path: Path, github: FakeGitHub, monkeypatch: Any, code: int, out: str
) -> None:
    result, fake, _ = run_with(tmp_path, github, [(code, out), (0, "")], monkeypatch)
    assert len(fake.seen) == 1 and result.output == out
    assert len(github.comments(REPO, 1)) == 2
