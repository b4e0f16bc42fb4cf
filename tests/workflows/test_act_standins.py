"""The stand-in actions follow GitHub's rules (what the act tests' claims rest on).

Each script runs as its composite action runs it: inputs in INPUT_*, a GitHub-like env."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.workflows.act import STANDINS

CACHE = STANDINS / "actions" / "cache" / "cache.py"
UPLOAD = STANDINS / "actions" / "upload-artifact" / "upload.py"
DOWNLOAD = STANDINS / "actions" / "download-artifact" / "download.py"


@dataclass
class Step:
    code: int
    outputs: dict[str, str]
    workspace: Path
    log: str


class Runner:
    """Runs stand-in scripts, each in a fresh workspace, against one shared store."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = root / "store"
        self.steps = 0
        (root / "event.json").write_text(json.dumps({"repository": {"default_branch": "main"}}))

    def __call__(
        self,
        script: Path,
        *args: str,
        ref: str,
        base: str = "",
        run: str = "1",
        files: dict[str, str] | None = None,
        **inputs: str,
    ) -> Step:
        self.steps += 1
        workspace = self.root / f"workspace{self.steps}"
        workspace.mkdir()
        for rel, text in (files or {}).items():
            (workspace / rel).parent.mkdir(parents=True, exist_ok=True)
            (workspace / rel).write_text(text)
        output = self.root / f"output{self.steps}"
        output.touch()
        env = {
            "ACT_STANDIN_STORE": str(self.store),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_OUTPUT": str(output),
            "GITHUB_EVENT_PATH": str(self.root / "event.json"),
            "GITHUB_REF": ref,
            "GITHUB_BASE_REF": base,
            "GITHUB_RUN_ID": run,
            "GITHUB_REPOSITORY": "acme/demo",
            "GITHUB_SERVER_URL": "https://github.com",
            **{f"INPUT_{name.upper()}": value for name, value in inputs.items()},
        }
        result = subprocess.run(
            [sys.executable, str(script), *args], env=env, text=True, capture_output=True
        )
        outputs = dict(line.split("=", 1) for line in output.read_text().splitlines())
        return Step(result.returncode, outputs, workspace, result.stdout + result.stderr)

    def save(self, key: str, ref: str, content: str) -> Step:
        files = {".dvc/cache/f": content}
        return self(CACHE, "save", ref=ref, files=files, path=".dvc/cache", key=key)

    def restore(
        self, ref: str, key: str, base: str = "", restore_keys: str = "dvc-Linux-"
    ) -> tuple[dict[str, str], str | None]:
        step = self(
            CACHE,
            "restore",
            ref=ref,
            base=base,
            path=".dvc/cache",
            key=key,
            restore_keys=restore_keys,
        )
        assert step.code == 0, step.log
        file = step.workspace / ".dvc" / "cache" / "f"
        return step.outputs, file.read_text() if file.exists() else None


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path)


def test_cache_scopes_and_keys_follow_github(runner: Runner) -> None:
    runner.save("dvc-Linux-aaa", "refs/heads/main", "main-old")
    runner.save("dvc-Linux-bbb", "refs/heads/main", "main-new")
    runner.save("dvc-Linux-ccc", "refs/pull/3/merge", "pr3")
    pr5 = {"ref": "refs/pull/5/merge", "base": "main"}
    # the exact key: a hit, from the base (= default) branch
    outputs, content = runner.restore(key="dvc-Linux-aaa", **pr5)
    assert (outputs["cache-hit"], content) == ("true", "main-old")
    # another key: the newest entry of a restore-key prefix, not a hit; PR 3's is invisible
    outputs, content = runner.restore(key="dvc-Linux-zzz", **pr5)
    assert (outputs["cache-hit"], outputs["cache-matched-key"]) == ("false", "dvc-Linux-bbb")
    assert content == "main-new"
    # a PR's own scope comes first
    assert runner.restore("refs/pull/3/merge", "dvc-Linux-zzz", base="main")[1] == "pr3"
    # no entry with the prefix: a miss, nothing restored
    outputs, content = runner.restore("refs/heads/main", "pip-xyz", restore_keys="pip-")
    assert (outputs["cache-hit"], content) == ("false", None)


def test_cache_entries_are_immutable(runner: Runner) -> None:
    runner.save("k", "refs/heads/main", "first")
    assert "Unable to reserve cache" in runner.save("k", "refs/heads/main", "second").log
    assert runner.restore("refs/heads/main", "k")[1] == "first"


def test_artifacts_keep_the_layout_below_the_common_folder(runner: Runner) -> None:
    files = {"reports/pr/report.md": "# r", "reports/pr/img/roc.png": "png", "reports/pr/.x": "h"}
    step = runner(
        UPLOAD, ref="refs/pull/5/merge", run="41", files=files, name="pr-report", path="reports/pr/"
    )
    assert step.code == 0, step.log
    stored = runner.store / "artifacts" / "41" / "pr-report"
    assert sorted(str(p.relative_to(stored)) for p in stored.rglob("*") if p.is_file()) == [
        "img/roc.png",
        "report.md",
    ]
    step = runner(
        UPLOAD, ref="refs/pull/5/merge", run="41", files=files, name="pr-report", path="reports/pr/"
    )
    assert step.code == 1 and "already exists" in step.log
    step = runner(
        UPLOAD, ref="refs/pull/5/merge", run="43", path="nothing/", if_no_files_found="error"
    )
    assert step.code == 1 and "No files were found" in step.log


def test_downloading_another_runs_artifact_needs_a_token(runner: Runner) -> None:
    files = {"reports/pr/report.md": "# r"}
    runner(
        UPLOAD, ref="refs/pull/5/merge", run="41", files=files, name="pr-report", path="reports/pr/"
    )
    target = runner.root / "temp" / "pr-report"
    common = {
        "ref": "refs/heads/main",
        "run": "42",
        "name": "pr-report",
        "run_id": "41",
        "path": str(target),
    }
    step = runner(DOWNLOAD, **common)
    assert step.code == 1 and "github-token is required" in step.log
    step = runner(DOWNLOAD, **common, github_token="t")
    assert step.code == 0, step.log
    assert (target / "report.md").read_text() == "# r"
    assert step.outputs["download-path"] == str(target)
    step = runner(DOWNLOAD, **{**common, "name": "other"}, github_token="t")
    assert step.code == 1 and "Artifact not found" in step.log
