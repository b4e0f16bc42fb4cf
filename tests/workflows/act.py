"""Run this repository's GitHub workflows for real with act, on the host, in throw-away repos.

How the harness works (act 0.2.x behaviour, found by experiment):
- `act EVENT -e payload.json -W .github/workflows/X.yaml -P ubuntu-latest=-self-hosted`
  runs the job's steps with the host's shell and tools. act copies the repository's
  files (git-ignored ones excluded, `.git` included) into
  `<--action-cache-path>/<hash>/hostexecutor` and runs there; `GITHUB_WORKSPACE` points
  at that copy, which act deletes when the job ends. Steps inherit act's environment
  (PATH included): the harness removes the test venv from it, so a workflow builds its
  own environment as on a fresh runner.
- `actions/checkout` of the repository itself is skipped (whatever `fetch-depth` or
  `persist-credentials`): the copy *is* the checkout, at the repo's current HEAD, with the
  whole history. `GITHUB_SHA` is that HEAD, not the payload's.
- `github.repository` comes from the URL of the git remote named by `--remote-name`
  (a github.com URL), not from the payload. `github.event` is the payload as given;
  `GITHUB_REF` is `refs/pull/<number>/merge` for a pull_request payload (from its
  `number`), and `GITHUB_BASE_REF`/`GITHUB_HEAD_REF` come from `pull_request.base/head.ref`.
- `--env NAME=VALUE` reaches every step; `--env GITHUB_RUN_ID=N` also sets
  `github.run_id` (each run gets its own id: artifacts are stored per run).
  `-s GITHUB_TOKEN=...` sets both `secrets.GITHUB_TOKEN` and `github.token`. act masks
  every occurrence of a secret's value in its output (a secret "x" turns "ctx" into
  "ct***"): secrets here are long, distinctive strings.
- Remote actions (`owner/name[/sub]@SHA`) would be cloned from GitHub (unreachable
  here); `--local-repository owner/name@SHA=DIR` makes act read them from DIR, with
  `/sub` resolved inside it. Every pinned action of the workflows except checkout is
  mapped to a stand-in under tests/workflows/actions/<owner>/<name>/: small composite
  actions doing the equivalent on the host (setup-uv: the host's uv, on PATH or else the
  one the Makefile bootstrapped into .tools/, + UV_PYTHON; cache and
  artifacts: a directory store with GitHub's scope/key and layout rules). A pinned
  action without a stand-in is an error. CML is set up by the repository's own
  .github/actions/setup-cml, run for real: it downloads the `cml` recorder from a
  loopback release server (tests/workflows/downloads.py) and checks its sha256; the
  train-cloud launch job installs a fake Terraform from the same server.
- hashFiles(), `steps.*.outcome`, `continue-on-error`, `timeout-minutes` and `$GITHUB_OUTPUT`
  / `$GITHUB_ENV` / `$GITHUB_PATH` behave as on GitHub. Composite actions cannot have
  post steps on GitHub, so the workflows use cache/restore + cache/save explicitly.
- A checkout with a `ref:` other than the run's is not skipped: it runs the checkout
  stand-in, which clones the repository ($ACT_REPO_PATH) into the empty workspace at REF.
  `docker` is faked too (tests/workflows/bin/docker: runs images the build-push stand-in
  recorded).
- `gh` is on GitHub's runner image, not here: tests/workflows/bin/gh (a fake answering
  `gh api` from JSON files) is put first on PATH for act.

A `World` is one simulated GitHub repository: its cache and artifact store persist
across the act runs of a test module, as they do across workflow runs on GitHub.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from tests.helpers import TEMPLATE_ROOT, VENV_BIN, copy_template, run, tool_env, uv_binary
from tests.workflows.downloads import downloads
from tests.workflows.fake_github import FakeGitHub

ACT = VENV_BIN / "act"
HERE = Path(__file__).resolve().parent
STANDINS = HERE / "actions"
FAKE_BIN = HERE / "bin"
WORKFLOWS = TEMPLATE_ROOT / ".github" / "workflows"
WEBHOOK_EXAMPLES = (
    TEMPLATE_ROOT
    / "node_modules"
    / "@octokit"
    / "webhooks-examples"
    / "api.github.com"
    / "index.json"
)
REMOTE = "github"  # the git remote act derives github.repository from
RUNNER = ["-P", "ubuntu-latest=-self-hosted"]
USES = re.compile(r"^\s*(?:-\s+)?uses:\s*([\w.-]+)/([\w.-]+)((?:/[\w.-]+)*)@(\S+)", re.M)
EXAMPLE_REPO = "Codertocat/Hello-World"
QUEUE_LINE = re.compile(r"^[ \t]+queue:[ \t]*(?:single|max)[ \t]*(?:#.*)?\n", re.M)


# --- actions ---------------------------------------------------------------------------


def pinned_actions(workflows: list[Path]) -> set[tuple[str, str, str]]:
    """(owner, name, ref) of every remote action the workflows use."""
    found = set()
    for workflow in workflows:
        for owner, name, _sub, ref in USES.findall(workflow.read_text()):
            found.add((owner, name, ref))
    return found


LOCAL_CALLS = re.compile(r"^\s*uses:\s*\./(\.github/workflows/[\w.-]+\.ya?ml)\b", re.M)


def with_called_workflows(workflow: Path) -> list[Path]:
    """The workflow and the local reusable workflows it calls (`uses: ./.github/...`)."""
    root = workflow.parents[2]
    found = [workflow]
    for path in found:
        found += [
            c for c in (root / m for m in LOCAL_CALLS.findall(path.read_text())) if c not in found
        ]
    return found


def local_repository_flags(workflows: list[Path]) -> list[str]:
    """--local-repository flags mapping each pinned action to its stand-in."""
    flags = []
    for owner, name, ref in sorted(pinned_actions(workflows)):
        if (owner, name) == ("actions", "checkout") and not (STANDINS / owner / name).is_dir():
            continue  # act skips the repository's own checkout (the stand-in: other refs)
        standin = STANDINS / owner / name
        if not standin.is_dir():
            raise AssertionError(f"{owner}/{name}@{ref} has no stand-in in {standin}")
        flags += ["--local-repository", f"{owner}/{name}@{ref}={standin}"]
    return flags


# --- event payloads (from @octokit/webhooks-examples) ----------------------------------


@cache
def _examples() -> dict[str, list[dict[str, Any]]]:
    return {e["name"]: e["examples"] for e in json.loads(WEBHOOK_EXAMPLES.read_text())}


def webhook_example(event: str, action: str | None = None, index: int = 0) -> dict[str, Any]:
    """A deep copy of a real webhook payload from @octokit/webhooks-examples."""
    matching = [e for e in _examples()[event] if action is None or e.get("action") == action]
    return copy.deepcopy(matching[index])


def _replace_strings(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {k: _replace_strings(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_replace_strings(v, old, new) for v in node]
    return node.replace(old, new) if isinstance(node, str) else node


def retarget_repo(repo: dict[str, Any], full_name: str, fork: bool = False) -> dict[str, Any]:
    """A repository object of a payload, renamed to `full_name` (URLs included)."""
    out = _replace_strings(repo, repo["full_name"], full_name)
    owner, name = full_name.split("/")
    out["name"] = name
    out["owner"] = _replace_strings(out["owner"], repo["owner"]["login"], owner)
    out["owner"]["login"] = owner
    out["fork"] = fork
    out["id"] = zlib.crc32(full_name.encode())
    out["default_branch"] = "main"
    return out


def pull_request_event(
    repo: GitRepo,
    number: int,
    head_ref: str,
    base_ref: str = "main",
    head_repo: str | None = None,
) -> dict[str, Any]:
    """The `pull_request.opened` example, retargeted to `repo` and its branches' commits.

    `head_repo` other than repo.full_name makes it a PR from a fork."""
    payload = webhook_example("pull_request", "opened")
    base = retarget_repo(payload["repository"], repo.full_name)
    head = retarget_repo(payload["repository"], head_repo or repo.full_name, fork=bool(head_repo))
    payload = _replace_strings(payload, EXAMPLE_REPO, repo.full_name)
    payload["number"] = number
    payload["repository"] = base
    pr = payload["pull_request"]
    pr.update(
        number=number,
        url=f"https://api.github.com/repos/{repo.full_name}/pulls/{number}",
        html_url=f"https://github.com/{repo.full_name}/pull/{number}",
    )
    pr["head"].update(
        ref=head_ref,
        sha=repo.sha(head_ref),
        repo=head,
        label=f"{head['owner']['login']}:{head_ref}",
    )
    pr["base"].update(
        ref=base_ref,
        sha=repo.sha(base_ref),
        repo=base,
        label=f"{base['owner']['login']}:{base_ref}",
    )
    return payload


def dispatch_event(repo: GitRepo, workflow: str, **inputs: Any) -> dict[str, Any]:
    """A workflow_dispatch of .github/workflows/WORKFLOW on main with these inputs."""
    payload = webhook_example("workflow_dispatch")
    payload["inputs"] = inputs
    payload["ref"] = "refs/heads/main"
    payload["repository"] = retarget_repo(payload["repository"], repo.full_name)
    payload["workflow"] = f".github/workflows/{workflow}"
    return payload


def push_event(repo: GitRepo, ref: str = "refs/heads/main") -> dict[str, Any]:
    """The first `push` example, retargeted to `repo` and the commit `ref` points at
    (a branch or a tag: `refs/tags/...`)."""
    payload = webhook_example("push")
    payload = _replace_strings(payload, payload["repository"]["full_name"], repo.full_name)
    sha = repo.sha(ref)
    payload.update(
        ref=ref, after=sha, repository=retarget_repo(payload["repository"], repo.full_name)
    )
    if payload.get("head_commit"):
        payload["head_commit"]["id"] = sha
    return payload


def workflow_run_event(
    repo: GitRepo,
    run_id: int,
    pull_request: dict[str, Any],
    conclusion: str = "success",
    workflow_name: str = "PR model report",
) -> dict[str, Any]:
    """A `workflow_run.completed` example for the run of pr.yaml on `pull_request` (a
    pull_request event payload). As on GitHub, `pull_requests` is empty for a fork."""
    payload = webhook_example("workflow_run", "completed", index=1)
    pr = pull_request["pull_request"]
    base_repo = retarget_repo(payload["workflow_run"]["repository"], repo.full_name)
    head_full = pr["head"]["repo"]["full_name"]
    head_repo = retarget_repo(
        payload["workflow_run"]["head_repository"], head_full, fork=head_full != repo.full_name
    )
    run = payload["workflow_run"]
    run.update(
        id=run_id,
        name=workflow_name,
        event="pull_request",
        status="completed",
        conclusion=conclusion,
        head_branch=pr["head"]["ref"],
        head_sha=pr["head"]["sha"],
        repository=base_repo,
        head_repository=head_repo,
        pull_requests=[]
        if head_full != repo.full_name
        else [
            {"number": pr["number"], "head": {"ref": pr["head"]["ref"], "sha": pr["head"]["sha"]}}
        ],
        html_url=f"https://github.com/{repo.full_name}/actions/runs/{run_id}",
    )
    payload["workflow"]["name"] = workflow_name
    payload["repository"] = retarget_repo(payload["repository"], repo.full_name)
    return payload


# --- repositories ----------------------------------------------------------------------


@dataclass
class GitRepo:
    """A throw-away git repository with a github.com remote (what act reads)."""

    path: Path
    full_name: str

    def git(self, *args: str) -> str:
        return run(["git", *args], self.path).stdout.strip()

    def sha(self, ref: str = "HEAD") -> str:
        return self.git("rev-parse", ref)

    def commit(self, message: str, files: dict[str, str] | None = None) -> str:
        for rel, text in (files or {}).items():
            (self.path / rel).parent.mkdir(parents=True, exist_ok=True)
            (self.path / rel).write_text(text)
        self.git("add", "-A")
        self.git("commit", "-qm", message)
        return self.sha()


def make_repo(dest: Path, full_name: str = "acme/mlops-demo") -> GitRepo:
    """A copy of the template (one commit on main) with a github.com remote."""
    copy_template(dest)
    repo = GitRepo(dest, full_name)
    repo.git("remote", "add", REMOTE, f"https://github.com/{full_name}.git")
    return repo


# --- running act -----------------------------------------------------------------------


@dataclass(repr=False)
class ActResult:
    returncode: int
    output: str
    run_id: int
    world: World

    def __repr__(self) -> str:
        # pytest shortens a long repr in the middle, which is where a failing step's
        # output is: show the lines around the first failed step, and where the whole log is.
        lines = self.output.splitlines()
        failed = next((i for i, line in enumerate(lines) if "❌" in line), len(lines) - 1)
        excerpt = "\n".join(lines[max(0, failed - 40) : failed + 3])
        failures = "\n".join(line for line in lines if "❌" in line)  # every failed step
        log = self.world.store / f"act-{self.run_id}.log"
        log.write_text(self.output)
        return (
            f"ActResult(returncode={self.returncode}, log {log}, failed:\n{failures}\n"
            f"up to the first failure:\n{excerpt}\n)"
        )

    @property
    def succeeded(self) -> bool:
        return self.returncode == 0 and "🏁  Job succeeded" in self.output

    def cml_calls(self) -> list[dict[str, Any]]:
        log = self.world.cml_log(self.run_id)
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def terraform_calls(self) -> list[str]:
        """The arguments of each call of the fake terraform, in order."""
        log = self.world.store / "terraform" / f"{self.run_id}.log"
        return log.read_text().splitlines() if log.exists() else []

    def artifact(self, name: str) -> Path:
        return self.world.store / "artifacts" / str(self.run_id) / name

    def step_ran(self, name: str) -> bool:
        return f"⭐ Run Main {name}" in self.output

    def step_succeeded(self, name: str) -> bool:
        return f"✅  Success - Main {name}" in self.output

    def step_failed(self, name: str) -> bool:
        return f"❌  Failure - Main {name}" in self.output

    def __str__(self) -> str:  # what an assertion message shows
        return f"act run {self.run_id} exited {self.returncode}\n{self.output[-12000:]}"


@dataclass
class Snapshot:
    store: Path  # a copy of World.store
    github: list[tuple[FakeGitHub, Any]]


class World:
    """One simulated GitHub repository: cache, artifacts and API answers shared by its runs."""

    _ids = itertools.count(101)

    def __init__(self, store: Path) -> None:
        self.store = store
        for sub in ("cache", "artifacts", "events", "cml", "api", "terraform"):
            (store / sub).mkdir(parents=True, exist_ok=True)

    def new_run_id(self) -> int:
        return next(self._ids)

    def snapshot(self) -> Snapshot:
        """A copy of everything a run can change: the store and the live fake GitHubs."""
        saved = Path(tempfile.mkdtemp(prefix="world-", dir=self.store.parent))
        shutil.copytree(self.store, saved, symlinks=True, dirs_exist_ok=True)
        return Snapshot(saved, [(fake, fake.snapshot()) for fake in FakeGitHub.live])

    def restore(self, snapshot: Snapshot) -> None:
        for entry in self.store.iterdir():
            if entry.name != "act":  # the action cache of the run about to repeat
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        for entry in snapshot.store.iterdir():
            if entry.name != "act":
                if entry.is_dir():
                    shutil.copytree(entry, self.store / entry.name, symlinks=True)
                else:
                    shutil.copy2(entry, self.store / entry.name)
        for fake, state in snapshot.github:
            fake.restore(state)

    def cml_log(self, run_id: int) -> Path:
        return self.store / "cml" / f"{run_id}.jsonl"

    def publish_pull_request(self, event: dict[str, Any]) -> None:
        """Make `gh api repos/O/R/pulls/N` answer with the event's pull request."""
        pr = event["pull_request"]
        target = (
            self.store
            / "api"
            / "repos"
            / event["repository"]["full_name"]
            / "pulls"
            / f"{pr['number']}.json"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(pr))

    def without_queue(self, workflow_file: Path, run_id: int) -> Path:
        """The workflow as act 0.2.89 can read it: without `concurrency.queue`, a key that
        act's schema does not know yet (nektos/act#6095: "Unknown Property queue").
        It only orders waiting runs on GitHub; act runs one workflow at a time anyway."""
        text = workflow_file.read_text()
        stripped = QUEUE_LINE.sub("", text)
        if stripped == text:
            return workflow_file
        copy = self.store / "workflows" / str(run_id) / workflow_file.name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(stripped)
        return copy

    def act(
        self,
        repo: GitRepo,
        event_name: str,
        payload: dict[str, Any],
        workflow: str,
        job: str | None = None,
        run_id: int | None = None,
        env: dict[str, str] | None = None,
        secrets: dict[str, str] | None = None,
        timeout: float = 900,
    ) -> ActResult:
        """Run `workflow` (a file name in repo's .github/workflows) for `payload`, from the
        repo's current HEAD. `env`/`secrets` add to what the harness sets. Secret values
        are masked in act's output wherever they occur: keep them long and distinctive."""
        run_id = run_id or self.new_run_id()
        event_file = self.store / "events" / f"{run_id}.json"
        event_file.write_text(json.dumps(payload, indent=1))
        workflow_file = repo.path / ".github" / "workflows" / workflow
        readable = self.without_queue(workflow_file, run_id)
        action_cache = self.store / "act" / str(run_id)
        args = [
            str(ACT), event_name, "-e", str(event_file), "-W", str(readable), *RUNNER,
            "--remote-name", REMOTE, "--no-cache-server", "--action-cache-path", str(action_cache),
            *local_repository_flags(with_called_workflows(workflow_file)),
            "--env", f"GITHUB_RUN_ID={run_id}",
            "--env", f"ACT_STANDIN_STORE={self.store}",
            "--env", f"CML_RECORDER_LOG={self.cml_log(run_id)}",
            "--env", f"TERRAFORM_FAKE_LOG={self.store / 'terraform' / f'{run_id}.log'}",
            "--env", f"GH_FAKE_API_DIR={self.store / 'api'}",
            "--env", f"ACT_REPO_PATH={repo.path}",  # for the checkout stand-in (other refs)
            "--env", f"ACT_HOST_UV={uv_binary()}",  # setup-uv stand-in: uv when not on PATH
        ]  # fmt: skip
        for name, value in {**downloads().env(), **(env or {})}.items():
            args += ["--env", f"{name}={value}"]
        for name, value in {"GITHUB_TOKEN": "test-token", **(secrets or {})}.items():
            args += ["-s", f"{name}={value}"]
        if job:
            args += ["-j", job]
        # A repeated run must start from the state the first one found: its artifacts, the
        # caches it saved, recorded calls and GitHub's comments would otherwise be there
        # already (upload-artifact refuses a second artifact of the same name on a run).
        before = self.snapshot()
        for attempt in range(1 + LOST_OUTPUT_RETRIES):
            if attempt:
                self.restore(before)
            result = subprocess.run(
                args, cwd=repo.path, env=host_env(), text=True, capture_output=True, timeout=timeout
            )
            output = result.stdout + result.stderr
            if result.returncode == 0 or not lost_step_output(output):
                break
        shutil.rmtree(action_cache, ignore_errors=True)
        shutil.rmtree(before.store, ignore_errors=True)
        return ActResult(result.returncode, output, run_id, self)


# act's host executor now and then loses every output line of a step that fails within
# milliseconds (seen twice in ~40 full runs: the step's `::error` text missing, the
# failure line present; on a machine loaded by other jobs, twice in one run and once
# twice in a row): such a run is repeated, at most twice. A step that fails printing
# nothing fails the same way again, so a real failure is still reported.
LOST_OUTPUT_RETRIES = 2
_STEP_RUN = re.compile(r"⭐ Run (Main|Pre|Post) (.+)$")
_STEP_FAILED = re.compile(r"❌  Failure - (Main|Pre|Post) (.+) \[[^]]+\]$")
# act's own lines about steps; anything else in a step's span is its output (`| text`,
# `❗  ::error ...`, ...)
_STEP_MARK = re.compile(r"⭐ Run |✅  Success - |❌  Failure - |\] exit status \d+$")


def lost_step_output(output: str) -> bool:
    """A failed step with no output line between its start and its failure."""
    started: dict[tuple[str, str], int] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if run := _STEP_RUN.search(line):
            started[run.groups()] = i
        elif (failed := _STEP_FAILED.search(line)) and failed.groups() in started:
            between = lines[started[failed.groups()] + 1 : i]
            if not any(_STEP_RUN.search(x) for x in between) and not any(
                not _STEP_MARK.search(x) for x in between
            ):
                return True
    return False


def host_env() -> dict[str, str]:
    """The environment a runner would have: no test venv on PATH, the fake gh first."""
    env = tool_env()
    venv_bin = str(VENV_BIN)
    path = [p for p in env["PATH"].split(os.pathsep) if p and p != venv_bin]
    env["PATH"] = os.pathsep.join([str(FAKE_BIN), *path])
    for name in ("VIRTUAL_ENV", "UV_RUN_RECURSION_DEPTH", "PYTHONPATH", "CML_RECORDER_LOG"):
        env.pop(name, None)
    return env
