"""Merge to deploy, end to end under act: deploy.yaml (and deploy-model.yaml it calls).

One simulated GitHub repository (`World`) with a bare git repository as `origin` (what
the workflow pushes its GTO tags to). Its history starts on the host: a weak model
registered as v0.1.0 and promoted to prod (`registry register/promote --push`). Then
two pushes to main run deploy.yaml for real:
1. a better model: v0.2.0 is registered and promoted (tags pushed), the image is built
   and "pushed" (docker stand-ins: a registry in a directory), the fake `docker` runs
   it for the smoke test (uvicorn serving the image's files), and the release
   model@v0.2.0 gets the model files and the model card;
2. a worse model: v0.3.0 is registered and pushed, not promoted; nothing is published.
The history page of each run is built from the Drift monitor's reports fetched from a fake
GitHub REST API (tests/workflows/fake_github.py, GITHUB_API_URL): two monitor runs with a
`drift-report` artifact and one whose artifact has expired.
Two act runs in all (each reproduces the pipeline and sets up uv per job). The static
tests at the end pin the workflows' shape: permissions per job, where tags are pushed and
images published, no cache where something is published, one deployment at a time.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.helpers import TEMPLATE_ROOT, VENV_BIN, edit_params, run, share_dvc_cache
from tests.site_registry import drift_report, performance_report, window
from tests.workflows.act import WORKFLOWS, ActResult, GitRepo, World, make_repo, push_event
from tests.workflows.fake_github import FakeGitHub, zip_of

REPO = "acme/mlops-demo"
IMAGE = "ghcr.io/acme/mlops-demo"
WEAK = {"train.random_forest.n_estimators": 2, "train.random_forest.max_depth": 2}
BETTER = {"train.random_forest.n_estimators": 100, "train.random_forest.max_depth": None}
WORSE = {"train.random_forest.n_estimators": 1, "train.random_forest.max_depth": 1}
RELEASE_FILES = ["metrics.json", "model.onnx", "model.skops", "model_card.md", "schema.json"]


def remote_tags(bare: Path) -> set[str]:
    out = run(["git", "for-each-ref", "refs/tags", "--format=%(refname:strip=2)"], bare).stdout
    return set(out.split())


def commit_model(repo: GitRepo, message: str, changes: dict[str, Any]) -> None:
    """Change the params, reproduce (dvc.lock must be committed with them), commit."""
    edit_params(repo.path, **changes)
    run(["dvc", "repro", "--quiet"], repo.path)
    repo.commit(message)


def pushes(world: World) -> list[dict[str, Any]]:
    log = world.store / "registry" / "pushes.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def releases(world: World) -> dict[str, dict[str, Any]]:
    root = world.store / "releases"
    found = {}
    for record in root.glob("*/release.json") if root.exists() else []:
        data = json.loads(record.read_text())
        found[data["tag_name"]] = data | {"dir": record.parent}
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return World(tmp_path_factory.mktemp("github"))


def monitor_artifact(day: int, live: float, psi: float) -> bytes:
    """reports/monitor/ of one monitor.yaml run (as uploaded): a live window of v0.1.0."""
    start, end = f"2026-06-{day:02d}T00:00:00+00:00", f"2026-06-{day + 1:02d}T00:00:00+00:00"
    performance = performance_report() | {"created_at": end}
    performance["windows"] = [window("v0.1.0", start, end, live, 0.9)]
    drift = drift_report(end, psi, "drift" if psi > 0.2 else "ok")
    return zip_of(
        {
            "performance.json": json.dumps(performance),
            "drift.json": json.dumps(drift),
            "drift.md": "# Drift report\n",
        }
    )


@pytest.fixture(scope="module")
def github() -> Any:
    """The REST API the site job fetches the monitor's reports from (github.token)."""
    fake = FakeGitHub("test-token").start()
    fake.add_repository(REPO)
    fake.add_run(
        REPO,
        "monitor.yaml",
        "2026-06-02T05:17:00Z",
        {"drift-report": monitor_artifact(1, 0.8123, 0.05)},
    )
    fake.add_run(
        REPO,
        "monitor.yaml",
        "2026-06-03T05:17:00Z",
        {"drift-report": monitor_artifact(2, 0.7345, 0.31)},
    )
    fake.add_run(
        REPO, "monitor.yaml", "2026-05-01T05:17:00Z", {"drift-report": monitor_artifact(3, 0.5, 0.1)},
        expired=("drift-report",),
    )  # fmt: skip
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory, dvc_cache: Path) -> tuple[GitRepo, Path]:
    """The repository with v0.1.0 (a weak model) registered and in prod, on origin too."""
    root = tmp_path_factory.mktemp("deploy")
    repo = make_repo(root / "mlops-demo", REPO)
    share_dvc_cache(repo.path, dvc_cache)  # .dvc/config.local: git-ignored, not seen by act
    bare = root / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], root)
    repo.git("remote", "add", "origin", str(bare))
    commit_model(repo, "train: a first, weak model", WEAK)
    repo.git("push", "-q", "origin", "main")
    for command in ("register", "promote"):
        run([str(VENV_BIN / "python"), "-m", "mlops_template", "registry", command, "--push"],
            repo.path)  # fmt: skip
    assert remote_tags(bare) == {"model@v0.1.0", "model#prod#1"}
    return repo, bare


def merge(
    world: World,
    repo: GitRepo,
    bare: Path,
    message: str,
    changes: dict[str, Any],
    github: FakeGitHub,
) -> ActResult:
    """A commit on main (as a merged PR leaves it), pushed, then deploy.yaml on the push."""
    repo.git("fetch", "-q", "--tags", "origin")  # actions/checkout fetches every tag
    commit_model(repo, message, changes)
    repo.git("push", "-q", "origin", "main")
    env = {"GITHUB_API_URL": github.url}
    return world.act(repo, "push", push_event(repo), "deploy.yaml", env=env, timeout=1500)


@pytest.fixture(scope="module")
def better(world: World, repo: tuple[GitRepo, Path], github: FakeGitHub) -> ActResult:
    return merge(world, *repo, "train: the full forest", BETTER, github)


@pytest.fixture(scope="module")
def worse(
    world: World, repo: tuple[GitRepo, Path], better: ActResult, github: FakeGitHub
) -> tuple[ActResult, int, int]:
    before = (len(pushes(world)), len(releases(world)))
    return merge(world, *repo, "train: one stump is enough", WORSE, github), *before


@pytest.mark.slow
def test_a_better_merge_is_registered_promoted_and_its_tags_pushed(
    better: ActResult, repo: tuple[GitRepo, Path]
) -> None:
    assert better.succeeded, better
    _, bare = repo
    assert {"model@v0.2.0", "model#prod#2"} <= remote_tags(bare)
    decision = json.loads((better.artifact("deploy-decision") / "decision.json").read_text())
    assert (decision["version"], decision["previous"], decision["promoted"]) == (
        "v0.2.0",
        "v0.1.0",
        True,
    )
    assert decision["comparison"]["roc_auc"]["verdict"] == "better", decision["comparison"]
    # The prod version was rebuilt from its commit, not read from any file.
    assert "prod v0.1.0" in better.output and "reproduced in" in better.output


@pytest.mark.slow
def test_a_better_merge_publishes_the_image_with_the_promoted_model(
    better: ActResult, world: World
) -> None:
    (push,) = pushes(world)
    assert push["run"] == str(better.run_id)
    assert push["tags"] == [f"{IMAGE}:v0.2.0", f"{IMAGE}:prod"]
    assert push["build_args"]["MODEL_VERSION"] == "v0.2.0"
    decision = json.loads(
        (better.artifact("model-bundle") / "reports/deploy/decision.json").read_text()
    )
    assert push["build_args"]["GIT_COMMIT"] == decision["commit"]
    image = world.store / "registry" / "images" / push["digest"].split(":")[1] / "context"
    baked = hashlib.sha256((image / "models" / "model.onnx").read_bytes()).hexdigest()
    assert baked == decision["model_sha256"]
    assert (image / "data" / "schema.json").is_file() and not (image / ".git").exists()
    # The smoke test ran that exact image (by digest) and passed.
    calls = [
        json.loads(line)
        for line in (world.store / "registry" / "docker-calls.jsonl").read_text().splitlines()
    ]
    (started,) = [c for c in calls if c[0] == "run"]
    assert started[-1] == f"{IMAGE}:v0.2.0@{push['digest']}"
    assert next(c for c in calls if c[0] == "rm")[:2] == ["rm", "--force"]
    assert "smoke test passed" in better.output and "serves v0.2.0" in better.output


@pytest.mark.slow
def test_a_better_merge_publishes_the_release_with_files_and_model_card(
    better: ActResult, world: World
) -> None:
    release = releases(world)["model@v0.2.0"]
    assert release["name"] == "model@v0.2.0" and release["runs"] == [str(better.run_id)]
    assert release["assets"] == RELEASE_FILES
    bundle = better.artifact("model-bundle")
    card = (bundle / "reports/deploy/model_card.md").read_text()
    assert release["body"] == card
    assert card.startswith("# Model card: model v0.2.0 (promoted to production)")
    assets = release["dir"] / "assets"
    assert (assets / "model.onnx").read_bytes() == (bundle / "models/model.onnx").read_bytes()
    assert (assets / "schema.json").read_bytes() == (bundle / "data/schema.json").read_bytes()


@pytest.mark.slow
def test_a_merge_builds_the_history_page_and_requests_its_pages_deployment(
    better: ActResult, world: World, github: FakeGitHub
) -> None:
    import tarfile

    archive = better.artifact("github-pages") / "artifact.tar"
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        page = tar.extractfile("index.html").read().decode()  # type: ignore[union-attr]
    assert {"index.html", "cards/model_card.md", "cards/model_card.html"} <= set(names), names
    # Under act the job's workspace is a copy of the host repository: its tags, not those
    # decide pushed to origin a minute earlier (on GitHub the checkout with fetch-depth 0
    # fetches them). So the page lists v0.1.0 in prod and the card of v0.2.0's decision
    # as the workspace's, its version not in the registry here.
    assert re.search(r'<tr class="prod" data-version="v0\.1\.0">', page), page
    assert "names v0.2.0, which is not in the registry here" in page
    # Live performance and drift: the two monitor runs' reports, fetched with the job's
    # token from the (fake) GitHub API; the expired artifact skipped.
    assert "No live data yet" not in page
    performance = page[page.index("<section id=performance>") : page.index("<section id=drift>")]
    assert "live 0.8123" in performance and "live 0.7345" in performance
    assert "Windows (2)" in performance
    assert "2 run(s) of monitor.yaml with reports (1 skipped" in performance
    drift = page[page.index("<section id=drift>") : page.index("<section id=cards>")]
    assert re.findall(r"<td>(2026-06-0\d) 00:00</td>", drift) == ["2026-06-03", "2026-06-02"]
    assert '<tr class="alarm">' in drift
    calls = [r for r in github.requests if "/actions/" in r["path"]]
    assert calls and all(r["auth"] == "Bearer test-token" for r in calls)
    assert len(github.blob_requests) >= 2 and all(not r["auth"] for r in github.blob_requests)
    with tarfile.open(archive) as tar:
        card = tar.extractfile("cards/model_card.md").read().decode()  # type: ignore[union-attr]
    assert card.startswith("# Model card: model v0.2.0")
    calls = [
        json.loads(line)
        for line in (world.store / "github-script" / "calls.jsonl").read_text().splitlines()
    ]
    (call,) = [c for c in calls if c["run"] == str(better.run_id)]
    assert call["job"] == "pages" and call["env"]["ARTIFACT_ID"], call


@pytest.mark.slow
def test_a_worse_merge_is_registered_but_publishes_nothing(
    worse: tuple[ActResult, int, int], world: World, repo: tuple[GitRepo, Path]
) -> None:
    result, pushes_before, releases_before = worse
    assert result.succeeded, result
    _, bare = repo
    tags = remote_tags(bare)
    assert "model@v0.3.0" in tags
    assert not {t for t in tags if t.startswith("model#prod#") and t != "model#prod#1"} - {
        "model#prod#2"
    }
    decision = json.loads((result.artifact("deploy-decision") / "decision.json").read_text())
    assert (decision["version"], decision["previous"], decision["promoted"]) == (
        "v0.3.0",
        "v0.2.0",
        False,
    )
    assert decision["reasons"] and all(r.startswith("gate.") for r in decision["reasons"])
    assert not result.artifact("model-bundle").exists()
    assert (len(pushes(world)), len(releases(world))) == (pushes_before, releases_before)
    assert "Build and push the serving image" not in result.output


# ---------------------------------------------------------------- static shape

DEPLOY_FILES = ["deploy.yaml", "deploy-model.yaml", "promote.yaml"]
PUBLISHERS = ("docker/build-push-action@", "softprops/action-gh-release@")
CLI = "uv run --frozen python -m mlops_template "


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((WORKFLOWS / name).read_text())  # `on:` is read as True


def jobs(name: str) -> dict[str, dict[str, Any]]:
    return load(name)["jobs"]


def uses(job: dict[str, Any]) -> list[str]:
    return [s.get("uses", "") for s in job.get("steps", [])]


def runs(job: dict[str, Any]) -> list[str]:
    return [" ".join(s["run"].split()) for s in job.get("steps", []) if "run" in s]


def test_deploy_runs_on_main_one_at_a_time_and_deploys_only_when_promoted() -> None:
    workflow = load("deploy.yaml")
    assert workflow[True] == {"push": {"branches": ["main"]}}
    # Queued, never replaced: a pending merge's registration or a rollback is not dropped.
    assert workflow["concurrency"] == {
        "group": "production-deploy",
        "cancel-in-progress": False,
        "queue": "max",
    }
    assert load("promote.yaml")["concurrency"] == workflow["concurrency"]
    build, decide, deploy = (jobs("deploy.yaml")[j] for j in ("build", "decide", "deploy"))
    assert "actions/cache/save@" in " ".join(uses(build)) and runs(build) == ["make run"]
    assert decide["needs"] == "build"
    assert runs(decide) == ["make run", "make register PUSH=1", "make promote PUSH=1"]
    assert deploy["if"] == "needs.decide.outputs.promoted == 'true'"
    assert deploy["uses"] == "./.github/workflows/deploy-model.yaml"
    assert set(deploy["with"]) == set(load("deploy-model.yaml")[True]["workflow_call"]["inputs"])


def test_deploy_model_builds_smoke_tests_then_releases_in_production() -> None:
    image, smoke, release = (jobs("deploy-model.yaml")[j] for j in ("image", "smoke", "release"))
    assert image["environment"] == {"name": "production"}
    assert smoke["needs"] == "image" and release["needs"] == ["image", "smoke"]
    assert runs(image) == ["make verify-model"]  # before anything is pushed
    assert runs(smoke) == ["make smoke"]
    assert smoke["steps"][-1]["env"]["IMAGE"] == "${{ needs.image.outputs.image }}"
    assert "steps.build.outputs.digest" in image["outputs"]["image"]  # tested by digest
    tags = next(s for s in image["steps"] if "metadata-action" in s.get("uses", ""))["with"]["tags"]
    assert tags.splitlines() == ["type=raw,value=${{ inputs.version }}", "type=raw,value=prod"]
    (gh_release,) = [s for s in release["steps"] if "action-gh-release" in s.get("uses", "")]
    assert gh_release["with"]["tag_name"] == "${{ inputs.tag }}"
    assert gh_release["with"]["files"].split() == [
        "models/model.onnx", "models/model.skops", "data/schema.json", "eval/metrics.json",
        "reports/deploy/model_card.md",
    ]  # fmt: skip


def test_least_privilege_per_job() -> None:
    for name in DEPLOY_FILES:
        for job_id, job in jobs(name).items():
            where = f"{name}:{job_id}"
            permissions = job["permissions"]
            steps = " ".join(uses(job))
            if "uses" in job:  # a reusable-workflow call: the ceiling for its jobs
                assert permissions == {"contents": "write", "packages": "write"}, where
                continue
            pushes_tags = any("PUSH=1" in r for r in runs(job))
            releases = "softprops/action-gh-release@" in steps
            assert (permissions.get("contents") == "write") == (pushes_tags or releases), where
            assert not (pushes_tags and releases), where  # tags and releases in separate jobs
            pushes_image = "docker/build-push-action@" in steps
            assert (permissions.get("packages") == "write") == pushes_image, where
            # Pages: only the job deploying to the github-pages environment may, with the
            # OIDC token the Pages deployment API requires.
            environment = job.get("environment") or {}
            deploys_pages = (environment.get("name") if isinstance(environment, dict)
                             else environment) == "github-pages"  # fmt: skip
            assert (permissions.get("pages") == "write") == deploys_pages, where
            assert (permissions.get("id-token") == "write") == deploys_pages, where
            if deploys_pages:
                assert permissions == {"pages": "write", "id-token": "write"}, where
            # Actions artifacts: only the job reading the Drift monitor's reports, read-only.
            fetches = any(r.startswith("make site-reports") for r in runs(job))
            assert (permissions.get("actions") == "read") == fetches, where
            assert set(permissions) <= {"contents", "packages", "pages", "id-token", "actions"}, (
                where
            )


def test_the_history_page_is_built_after_every_decision_and_published_on_pages() -> None:
    site, pages = (jobs("deploy.yaml")[j] for j in ("site", "pages"))
    assert site["needs"] == "decide" and "if" not in site  # promoted or not
    assert runs(site) == ["make site-reports", "make site"]
    assert site["permissions"] == {"contents": "read", "actions": "read"}
    (fetch,) = [st for st in site["steps"] if st.get("run") == "make site-reports"]
    (build,) = [st for st in site["steps"] if st.get("run") == "make site"]
    assert build["env"]["SITE_TAR"] == "${{ runner.temp }}/artifact.tar"
    # the monitor's reports, fetched with the job's token, are what the page is built from
    assert fetch["env"] == {
        "GITHUB_TOKEN": "${{ github.token }}",
        "SITE_REPORTS": build["env"]["SITE_REPORTS"],
    }
    (upload,) = [st for st in site["steps"] if st.get("id") == "upload"]
    assert upload["uses"].startswith("actions/upload-artifact@")
    assert (upload["with"]["name"], upload["with"]["path"]) == (
        "github-pages",
        build["env"]["SITE_TAR"],
    )
    assert site["outputs"]["artifact-id"] == "${{ steps.upload.outputs.artifact-id }}"
    for step in site["steps"]:  # what is published is built without a shared cache
        assert not step.get("uses", "").startswith("actions/cache"), step
        if step.get("uses", "").startswith("astral-sh/setup-uv@"):
            assert step["with"]["enable-cache"] is False
    assert pages["needs"] == "site" and pages["environment"]["name"] == "github-pages"
    (deploy,) = pages["steps"]
    assert deploy["uses"].startswith("actions/github-script@")
    assert deploy["env"] == {"ARTIFACT_ID": "${{ needs.site.outputs.artifact-id }}"}
    assert "/pages/deployments" in deploy["with"]["script"]
    assert "${{" not in deploy["with"]["script"]  # inputs through the environment only


def test_no_cache_where_something_is_published() -> None:
    for name in DEPLOY_FILES:
        for job_id, job in jobs(name).items():
            steps = job.get("steps", [])
            if not any(s.get("uses", "").startswith(PUBLISHERS) for s in steps):
                continue
            for step in steps:
                assert not step.get("uses", "").startswith("actions/cache"), f"{name}:{job_id}"
                if step.get("uses", "").startswith("astral-sh/setup-uv@"):
                    assert step["with"]["enable-cache"] is False, f"{name}:{job_id}"


def test_every_run_step_calls_make_or_the_cli_and_checkouts_keep_no_credentials() -> None:
    for name in DEPLOY_FILES:
        for job_id, job in jobs(name).items():
            for command in runs(job):
                assert command.startswith(("make ", CLI)), f"{name}:{job_id}: {command}"
                assert "${{" not in command, f"{name}:{job_id}"
            for step in job.get("steps", []):
                if step.get("uses", "").startswith("actions/checkout@"):
                    assert step["with"]["persist-credentials"] is False, f"{name}:{job_id}"


def test_promote_workflow_inputs_and_jobs() -> None:
    workflow = load("promote.yaml")
    assert set(workflow[True]["workflow_dispatch"]["inputs"]) == {
        "version",
        "rollback",
        "skip-gate",
    }
    resolve, assign, deploy = (workflow["jobs"][j] for j in ("resolve", "assign", "deploy"))
    assert runs(resolve) == [
        CLI + 'registry resolve ${ROLLBACK:+--rollback} ${VERSION:+--version "$VERSION"}'
    ]
    assert assign["steps"][0]["with"]["ref"] == "${{ needs.resolve.outputs.commit }}"
    assert runs(assign) == ["make run", "make rollback PUSH=1", "make promote PUSH=1"]
    assert deploy["uses"] == "./.github/workflows/deploy-model.yaml"
    assert deploy["if"] == "needs.assign.outputs.promoted == 'true'"


def test_zizmor_pedantic_finds_nothing_in_the_deploy_workflows() -> None:
    result = run(
        [str(VENV_BIN / "zizmor"), "--offline", "--persona=pedantic", "--format=json",
         *(f".github/workflows/{n}" for n in DEPLOY_FILES)],
        TEMPLATE_ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []
