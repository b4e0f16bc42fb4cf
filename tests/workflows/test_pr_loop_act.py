"""The pull-request loop, end to end under act: ci.yaml on main, pr.yaml, pr-comment.yaml.

One simulated GitHub repository (`World`: cache, artifacts, API answers) and one git
repo (a copy of the template) for the module. Three pipeline runs in all, the rest are
cheap commenter runs:
1. push to main -> ci.yaml `dvc-cache` reproduces the pipeline and saves the DVC cache;
2. a same-repo PR changing only documentation -> passes, comments, no stage executed;
3. a fork PR crippling the model -> fails on the gate, posts nothing, uploads the report;
then pr-comment.yaml on workflow_run payloads (posts to the fork PR; refuses bad numbers).
Comments go to a fake GitHub REST API on 127.0.0.1 (GITHUB_API_URL; tests/workflows/
fake_github.py, paging like GitHub): PR 7 starts with 151 comments, the report comment CML
left on an earlier run being the 121st, on page 2.
"""

from __future__ import annotations

import json
import re
import shutil
from typing import Any

import pytest
import yaml
from tests.helpers import FIXTURE_PARAMS, edit_params
from tests.workflows.act import (
    WORKFLOWS,
    ActResult,
    GitRepo,
    World,
    make_repo,
    pull_request_event,
    push_event,
    workflow_run_event,
)
from tests.workflows.fake_github import FakeGitHub

from mlops_template.comment import for_comment
from mlops_template.sticky_comment import carries_watermark, with_watermark

pytestmark = pytest.mark.slow

REPO = "acme/mlops-demo"
FORK = "forker/mlops-demo"
DOCS_PR, FORK_PR = 7, 8
STAGES = list(yaml.safe_load((WORKFLOWS.parents[1] / "dvc.yaml").read_text())["stages"])
TITLE = yaml.safe_load((WORKFLOWS / "pr.yaml").read_text())["env"]["REPORT_TITLE"]
GATE_STEP = "Fail when the enforced quality gate failed"
NUMBER_STEP = "Accept the PR number only if it is all digits and the PR is the run's"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("github"))


# What `cml comment update --watermark-title=...` left on an earlier run (src/watermark.js).
CML_COMMENT = (
    "## Model report (an earlier run)\n\n"
    '![](https://cml.dev/watermark.png#1a2b3c4d5e6f "CML watermark mlops-template model report")'
)


@pytest.fixture(scope="module")
def github() -> Any:
    fake = FakeGitHub("test-token").start()  # the harness's github.token
    fake.open_issue(REPO, DOCS_PR)
    fake.open_issue(REPO, FORK_PR)
    for i in range(120):
        fake.add_comment(REPO, DOCS_PR, f"review comment {i}")
    fake.add_comment(REPO, DOCS_PR, CML_COMMENT, login="github-actions[bot]")
    for i in range(30):
        fake.add_comment(REPO, DOCS_PR, f"later comment {i}")
    yield fake
    fake.stop()


def api_env(github: FakeGitHub) -> dict[str, str]:
    return {"GITHUB_API_URL": github.url}


def writes_to(github: FakeGitHub, number: int) -> list[dict[str, str]]:
    ids = {c["id"] for c in github.comments(REPO, number)}
    return [
        w
        for w in github.writes()
        if w["path"] == f"/repos/{REPO}/issues/{number}/comments"
        or w["path"].rsplit("/", 1)[1] in {str(i) for i in ids}
    ]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> GitRepo:
    return make_repo(tmp_path_factory.mktemp("repo") / "mlops-demo", REPO)


@pytest.fixture(scope="module")
def main_run(world: World, repo: GitRepo) -> ActResult:
    repo.git("checkout", "-q", "main")
    return world.act(repo, "push", push_event(repo), "ci.yaml", job="dvc-cache")


def _require(result: ActResult, what: str) -> None:
    if result.returncode != 0 and GATE_STEP not in result.output:
        pytest.fail(f"{what} did not run through:\n{result}")


@pytest.fixture(scope="module")
def docs_pr(
    world: World, repo: GitRepo, main_run: ActResult, github: FakeGitHub
) -> tuple[dict[str, Any], ActResult]:
    _require(main_run, "the main run")
    repo.git("checkout", "-q", "-b", "docs-typo", "main")
    repo.commit("docs: clarify the README", {"README.md": "# MLOps demo\n\nClearer words.\n"})
    event = pull_request_event(repo, DOCS_PR, "docs-typo")
    return event, world.act(repo, "pull_request", event, "pr.yaml", env=api_env(github))


@pytest.fixture(scope="module")
def fork_pr(
    world: World, repo: GitRepo, main_run: ActResult, github: FakeGitHub
) -> tuple[dict[str, Any], ActResult]:
    _require(main_run, "the main run")
    repo.git("checkout", "-q", "-b", "tiny-forest", "main")
    edit_params(
        repo.path, **{"train.random_forest.max_depth": 1, "train.random_forest.n_estimators": 1}
    )
    repo.commit("train: one stump is enough")
    event = pull_request_event(repo, FORK_PR, "tiny-forest", head_repo=FORK)
    return event, world.act(repo, "pull_request", event, "pr.yaml", env=api_env(github))


def comment(
    world: World,
    repo: GitRepo,
    github: FakeGitHub,
    event: dict[str, Any],
    run_id: int,
    **kw: Any,
) -> ActResult:
    """pr-comment.yaml for the completed pr.yaml run `run_id` of the PR in `event`."""
    repo.git("checkout", "-q", "main")  # workflow_run runs the default branch's workflow
    payload = workflow_run_event(repo, run_id, event, **kw)
    return world.act(repo, "workflow_run", payload, "pr-comment.yaml", env=api_env(github))


def metrics_rows(markdown: str) -> list[str]:
    """The metrics named in the first column of the report's markdown tables."""
    return re.findall(r"^\| *`?(\w+)`? *[↑↓]? *\|", markdown, flags=re.M)


def test_main_push_reproduces_the_pipeline_and_saves_the_dvc_cache(main_run: ActResult) -> None:
    assert main_run.succeeded, main_run
    for stage in STAGES:
        assert f"Running stage '{stage}'" in main_run.output, main_run
    assert "Cache not found for input keys: dvc-Linux-" in main_run.output
    (entry,) = (main_run.world.store / "cache" / "refs%2Fheads%2Fmain").iterdir()
    assert entry.name.startswith("dvc-Linux-")
    assert any((entry / "data" / ".dvc" / "cache" / "runs").iterdir()), "no run-cache saved"


def test_docs_only_pr_passes_comments_once_and_runs_no_stage(
    docs_pr: tuple[dict[str, Any], ActResult], github: FakeGitHub
) -> None:
    event, result = docs_pr
    assert result.succeeded, result
    # The cache came from main's run, by exact key (docs do not change the pipeline's inputs).
    assert re.search(
        r"Cache restored from key: dvc-Linux-\w+ \(scope refs/heads/main\)", result.output
    )
    assert "Cache saved with key" not in result.output
    # No stage executed, neither for the PR nor for its base: all from the run-cache.
    assert "Running stage" not in result.output, result
    for stage in STAGES:
        assert f"Stage '{stage}' is cached - skipping run" in result.output, result
    # Exactly one write: the sticky comment CML left on page 2 (the 121st of 151) is
    # edited to the report as uploaded, with CML's watermark; no comment is added.
    artifact = result.artifact("pr-report")
    assert result.cml_calls() == []
    (write,) = writes_to(github, DOCS_PR)
    ours = [c for c in github.comments(REPO, DOCS_PR) if carries_watermark(c["body"], TITLE)]
    assert len(ours) == 1 and len(github.comments(REPO, DOCS_PR)) == 151
    assert github.comments(REPO, DOCS_PR).index(ours[0]) == 120
    assert write["method"] == "PATCH" and write["path"].endswith(f"/comments/{ours[0]['id']}")
    assert write["auth"] == "Bearer test-token"
    gets = [r["query"] for r in github.requests if r["path"].endswith(f"/{DOCS_PR}/comments")]
    assert gets == ["per_page=100", "per_page=100&page=2"]
    markdown = (artifact / "report.md").read_text()
    assert ours[0]["body"] == with_watermark(markdown, TITLE, event["pull_request"]["head"]["sha"])
    compared = yaml.safe_load(FIXTURE_PARAMS.read_text())["compare"]["metrics"]  # the repo's
    assert set(compared) <= set(metrics_rows(markdown)), markdown
    assert event["pull_request"]["base"]["sha"] in markdown  # compared with the real base
    assert f"https://github.com/{REPO}/actions/runs/{result.run_id}" in markdown
    gate = json.loads((artifact / "gate.json").read_text())
    assert gate["passed"] is True and gate["reasons"] == []
    assert (artifact / "pr-number").read_text().strip() == str(DOCS_PR)
    assert list(artifact.glob("*.png"))


def test_fork_pr_degrading_the_model_fails_posts_nothing_and_uploads_the_report(
    fork_pr: tuple[dict[str, Any], ActResult], github: FakeGitHub
) -> None:
    _, result = fork_pr
    assert result.returncode != 0 and not result.succeeded, result
    # The job failed at its last step, on the gate: every step before it ran through, so
    # the comment step was skipped by its same-repository condition, not by a failure.
    assert result.step_failed(GATE_STEP), result
    assert result.step_succeeded("Upload the report"), result
    assert not result.step_ran("Post or update the report comment")
    assert result.cml_calls() == [] and writes_to(github, FORK_PR) == []
    # Only what the params change touches was rerun; the rest came from main's cache
    # (restore-keys: the exact key differs), and this PR's cache was saved in its scope.
    for stage in ("train", "evaluate"):
        assert f"Running stage '{stage}'" in result.output, result
    for stage in ("ingest", "validate", "split"):
        assert f"Running stage '{stage}'" not in result.output, result
    assert re.search(
        r"Cache restored from key: dvc-Linux-\w+ \(scope refs/heads/main\)", result.output
    )
    assert f"(scope refs/pull/{FORK_PR}/merge)" in result.output
    # The artifact carries everything the commenter needs, and the report names the rule.
    artifact = result.artifact("pr-report")
    gate = json.loads((artifact / "gate.json").read_text())
    assert gate["passed"] is False and gate["mode"] == "enforce" and gate["reasons"], gate
    report = (artifact / "report.md").read_text()
    rules = {rule for reason in gate["reasons"] for rule in re.findall(r"gate\.[\w.]+\w", reason)}
    assert rules, gate["reasons"]
    for rule in rules:
        assert rule in report, rule
    assert (artifact / "pr-number").read_text().strip() == str(FORK_PR)
    assert list(artifact.glob("*.png"))


def test_commenter_posts_the_fork_report_on_its_pr(
    world: World, repo: GitRepo, fork_pr: tuple[dict[str, Any], ActResult], github: FakeGitHub
) -> None:
    event, pr_run = fork_pr
    world.publish_pull_request(event)
    result = comment(world, repo, github, event, pr_run.run_id, conclusion="failure")
    assert result.succeeded, result
    # No comment of ours on PR 8 yet: one is created, the fork's report through the
    # comment filter with CML's watermark for the PR's head commit, nothing else.
    (write,) = writes_to(github, FORK_PR)
    assert write["method"] == "POST" and write["auth"] == "Bearer test-token"
    report = (pr_run.artifact("pr-report") / "report.md").read_text()
    (posted,) = github.comments(REPO, FORK_PR)
    assert posted["body"] == with_watermark(
        for_comment(report), TITLE, event["pull_request"]["head"]["sha"]
    )
    # The next run of the commenter edits that comment.
    again = comment(world, repo, github, event, pr_run.run_id, conclusion="failure")
    assert again.succeeded, again
    assert [w["method"] for w in writes_to(github, FORK_PR)] == ["POST", "PATCH"]
    assert len(github.comments(REPO, FORK_PR)) == 1


def _forged_run(world: World, source: ActResult, number: str) -> int:
    """A copy of `source`'s artifact under a new run id, with another pr-number."""
    run_id = world.new_run_id()
    forged = world.store / "artifacts" / str(run_id) / "pr-report"
    shutil.copytree(source.artifact("pr-report"), forged)
    (forged / "pr-number").write_text(number)
    return run_id


@pytest.mark.parametrize("number", ["8; touch pwned", "8\n9", "", "0x8", "-8"])
def test_commenter_refuses_a_pr_number_that_is_not_all_digits(
    world: World,
    repo: GitRepo,
    fork_pr: tuple[dict[str, Any], ActResult],
    number: str,
    github: FakeGitHub,
) -> None:
    event, pr_run = fork_pr
    world.publish_pull_request(event)
    before = len(github.requests)
    result = comment(world, repo, github, event, _forged_run(world, pr_run, number))
    assert result.returncode != 0, result
    assert result.step_failed(NUMBER_STEP), result
    assert "is not all digits" in result.output
    assert len(github.requests) == before  # the API was never asked


def test_commenter_refuses_the_number_of_another_pr(
    world: World,
    repo: GitRepo,
    docs_pr: tuple[dict[str, Any], ActResult],
    fork_pr: tuple[dict[str, Any], ActResult],
    github: FakeGitHub,
) -> None:
    """Digits, but not the PR this run built: the fork must not overwrite PR 7's comment."""
    fork_event, pr_run = fork_pr
    world.publish_pull_request(docs_pr[0])
    before = len(github.requests)
    result = comment(world, repo, github, fork_event, _forged_run(world, pr_run, str(DOCS_PR)))
    assert result.returncode != 0, result
    assert result.step_failed(NUMBER_STEP), result
    assert f"PR #{DOCS_PR}'s head is" in result.output
    assert len(github.requests) == before


@pytest.mark.parametrize(("which", "conclusion"), [("same-repo", "success"), ("fork", "cancelled")])
def test_commenter_skips_same_repo_prs_and_unfinished_runs(
    world: World,
    repo: GitRepo,
    docs_pr: tuple[dict[str, Any], ActResult],
    fork_pr: tuple[dict[str, Any], ActResult],
    which: str,
    conclusion: str,
    github: FakeGitHub,
) -> None:
    event, pr_run = docs_pr if which == "same-repo" else fork_pr
    before = len(github.requests)
    result = comment(world, repo, github, event, pr_run.run_id, conclusion=conclusion)
    assert result.returncode == 0, result
    assert not result.step_ran("Download the report of the PR's run"), result
    assert len(github.requests) == before


def test_payloads_are_the_real_examples_retargeted(
    repo: GitRepo, fork_pr: tuple[dict[str, Any], ActResult]
) -> None:
    event, _ = fork_pr
    pr = event["pull_request"]
    assert event["action"] == "opened" and event["number"] == pr["number"] == FORK_PR
    assert pr["base"]["sha"] == repo.sha("main") and pr["head"]["sha"] == repo.sha("tiny-forest")
    assert pr["base"]["repo"]["full_name"] == event["repository"]["full_name"] == REPO
    assert pr["head"]["repo"]["full_name"] == FORK and pr["head"]["repo"]["fork"] is True
    assert "Codertocat/Hello-World" not in json.dumps(event)
