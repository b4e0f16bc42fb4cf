"""The registry end to end: real commits, real `dvc repro`, real GTO tags pushed to a bare
"origin", and promotion decisions made by reproducing prod in a worktree.

One project for the module (the history matters): four versions are built in turn,
  v0.1.0 a weak model that meets the gate's minimums -> first model, promoted;
  v0.2.0 the default forest, clearly better            -> promoted;
  v0.3.0 a one-stump forest, clearly worse             -> registered, not promoted;
  v0.4.0 the default forest with another seed (noise)  -> whatever the gate says;
then prod is rolled back twice. The session's DVC cache is shared, so a configuration
seen before is restored from the run-cache.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.helpers import VENV_BIN, copy_template, edit_params, run

pytestmark = pytest.mark.slow

DEFAULT_FOREST = {"train.random_forest.n_estimators": 100, "train.random_forest.max_depth": None}
BUILDS: list[tuple[str, dict[str, Any]]] = [
    # one permutation-importance repeat: evaluate is not what is tested here
    (
        "weak",
        {
            "train.random_forest.n_estimators": 2,
            "train.random_forest.max_depth": 2,
            "evaluate.importance_repeats": 1,
        },
    ),
    ("better", DEFAULT_FOREST),
    ("worse", {"train.random_forest.n_estimators": 1, "train.random_forest.max_depth": 1}),
    ("noise", {**DEFAULT_FOREST, "train.seed": 43}),
]


def cli(project: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([str(VENV_BIN / "python"), "-m", "mlops_template", *args], project, check=check)


def remote_tags(bare: Path) -> set[str]:
    out = run(["git", "for-each-ref", "refs/tags", "--format=%(refname:strip=2)"], bare).stdout
    return set(out.split())


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory, dvc_cache: Path) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("registry")
    project = copy_template(root / "project", dvc_cache=dvc_cache)
    bare = root / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], root)
    run(["git", "remote", "add", "origin", str(bare)], project)
    found: dict[str, Any] = {"project": project, "bare": bare}
    for name, changes in BUILDS:
        edit_params(project, **changes)
        run(["dvc", "repro", "--quiet"], project)
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", f"train: {name} model"], project)
        cli(project, "registry", "register", "--push")
        promoted = cli(project, "registry", "promote", "--push")
        found[name] = {
            "decision": json.loads((project / "reports/deploy/decision.json").read_text()),
            "card": (project / "reports/deploy/model_card.md").read_text(),
            "log": promoted.stderr,
            "remote_tags": remote_tags(bare),
        }
    found["show_before"] = cli(project, "registry", "show").stdout
    cli(project, "registry", "rollback", "--push")
    found["rollback"] = json.loads((project / "reports/deploy/decision.json").read_text())
    found["show_after"] = cli(project, "registry", "show").stdout
    found["show_json"] = json.loads(cli(project, "registry", "show", "--json").stdout)
    found["gto_prod"] = run([str(VENV_BIN / "gto"), "show", "model#prod"], project).stdout
    # The second rollback as promote.yaml runs it: on the target's commit, built, so the
    # rollback also verifies that model and writes its card for the release.
    run(["git", "checkout", "-q", "model@v0.1.0"], project)
    run(["dvc", "checkout", "--quiet"], project)
    cli(project, "registry", "rollback", "--push", "--expect", "v0.1.0")
    found["second_rollback"] = json.loads((project / "reports/deploy/decision.json").read_text())
    found["rollback_card"] = (project / "reports/deploy/model_card.md").read_text()
    run(["git", "checkout", "-q", "main"], project)
    run(["dvc", "checkout", "--quiet"], project)
    found["third_rollback"] = cli(project, "registry", "rollback", check=False)
    found["final_remote_tags"] = remote_tags(bare)
    return found


def test_first_model_is_registered_as_v0_1_0_and_promoted(history: dict[str, Any]) -> None:
    step = history["weak"]
    decision = step["decision"]
    assert (decision["version"], decision["previous"], decision["promoted"]) == (
        "v0.1.0",
        None,
        True,
    )
    assert decision["kind"] == "first" and decision["comparison"] is None
    assert decision["stage_tag"] == "model#prod#1"
    assert step["remote_tags"] == {"model@v0.1.0", "model#prod#1"}
    assert "None: this is the first model of the registry." in step["card"]


def test_a_better_model_is_promoted_after_comparison_with_reproduced_prod(
    history: dict[str, Any],
) -> None:
    step = history["better"]
    decision = step["decision"]
    assert (decision["version"], decision["previous"], decision["promoted"]) == (
        "v0.2.0",
        "v0.1.0",
        True,
    )
    assert decision["gate"]["passed"] is True
    roc = decision["comparison"]["roc_auc"]
    assert roc["verdict"] == "better" and roc["ci"][0] > 0, roc
    assert step["remote_tags"] >= {"model@v0.2.0", "model#prod#2"}
    # prod's model came from its commit, rebuilt in a worktree from the shared DVC cache
    assert re.search(r"prod v0\.1\.0 \(\w{8}\) reproduced in", step["log"]), step["log"]
    card = step["card"]
    assert card.startswith("# Model card: model v0.2.0 (promoted to production)")
    assert "| roc_auc ↑ | " in card and "| better |" in card
    assert "Parameters changed since v0.1.0: `train.random_forest.max_depth`" in card


def test_a_worse_model_is_registered_but_not_promoted_and_prod_stays(
    history: dict[str, Any],
) -> None:
    step = history["worse"]
    decision = step["decision"]
    assert (decision["version"], decision["previous"], decision["promoted"]) == (
        "v0.3.0",
        "v0.2.0",
        False,
    )
    assert decision["stage_tag"] is None
    assert any(r.startswith("gate.max_regression.roc_auc") for r in decision["reasons"])
    assert decision["reasons"] == decision["gate"]["reasons"]
    assert "model@v0.3.0" in step["remote_tags"]
    assert not {t for t in step["remote_tags"] if t.startswith("model#prod#3")}
    assert step["card"].startswith("# Model card: model v0.3.0 (not promoted)")
    assert "NOT promoted" in step["log"]


def test_an_equal_within_noise_model_follows_the_gate(history: dict[str, Any]) -> None:
    decision = history["noise"]["decision"]
    assert decision["version"] == "v0.4.0" and decision["previous"] == "v0.2.0"
    verdicts = {m: c["verdict"] for m, c in decision["comparison"].items()}
    assert verdicts["roc_auc"] == "no significant change", decision["comparison"]
    assert decision["promoted"] is decision["gate"]["passed"] is True


def test_show_lists_versions_stages_and_metrics_from_the_tags(history: dict[str, Any]) -> None:
    lines = history["show_before"].splitlines()
    assert lines[0].startswith("model: 4 version(s), prod = v0.4.0")
    rows = {line.split()[0]: line.split() for line in lines[2:6]}
    assert list(rows) == ["v0.4.0", "v0.3.0", "v0.2.0", "v0.1.0"]
    assert rows["v0.4.0"][4] == "prod" and rows["v0.3.0"][4] == "-"
    # metrics column = the version's own eval/metrics.json, recorded at registration
    worse = history["worse"]["decision"]["metrics"]["roc_auc"]["value"]
    assert rows["v0.3.0"][5] == f"{worse:.4f}"


def test_rollback_moves_prod_to_the_previous_version_and_show_reflects_it(
    history: dict[str, Any],
) -> None:
    rollback = history["rollback"]
    assert (rollback["version"], rollback["previous"], rollback["kind"]) == (
        "v0.2.0",
        "v0.4.0",
        "rollback",
    )
    assert history["show_after"].splitlines()[0].startswith("model: 4 version(s), prod = v0.2.0")
    assert history["show_json"]["stages"] == {"prod": "v0.2.0"}
    by_version = {v["version"]: v["stages"] for v in history["show_json"]["versions"]}
    assert by_version == {"v0.4.0": [], "v0.3.0": [], "v0.2.0": ["prod"], "v0.1.0": []}
    assert "v0.2.0" in history["gto_prod"]  # GTO reads the same tags the same way
    assert "prod unassigned" in history["show_after"]


def test_a_second_rollback_goes_further_back_then_there_is_nothing_left(
    history: dict[str, Any],
) -> None:
    second = history["second_rollback"]
    assert (second["version"], second["previous"]) == ("v0.1.0", "v0.2.0")
    assert (
        second["metrics"]["roc_auc"]["value"]
        == history["weak"]["decision"]["metrics"]["roc_auc"]["value"]
    )
    card = history["rollback_card"]
    assert card.startswith("# Model card: model v0.1.0 (promoted to production)")
    assert "rollback: v0.2.0 unassigned from prod" in card
    third = history["third_rollback"]
    assert third.returncode == 2
    assert "nothing to roll back to: v0.1.0 is the only prod version" in third.stderr
    history_tags = {t for t in history["final_remote_tags"] if "#prod" in t}
    # GTO numbers every stage tag of the artifact: 1-3 promotions, then per rollback an
    # unassignment of the current version and an assignment of the target
    assert history_tags == {f"model#prod#{n}" for n in (1, 2, 3, 5, 7)} | {
        "model#prod!#4",
        "model#prod!#6",
    }


def test_integrity_a_tampered_model_is_refused(history: dict[str, Any], tmp_path: Path) -> None:
    project: Path = history["project"]
    onnx = project / "models" / "model.onnx"
    original = onnx.read_bytes()
    onnx.unlink()  # never write through the hardlink into the shared DVC cache
    onnx.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    try:
        refused = cli(project, "registry", "promote", "--no-check-fresh", check=False)
        assert refused.returncode == 2, refused.stderr
        assert "models/model.onnx: sha256" in refused.stderr and "does not match" in refused.stderr
        verify = cli(project, "registry", "verify", "--version", "v0.4.0", check=False)
        assert verify.returncode == 2 and "changed after training" in verify.stderr
    finally:
        onnx.unlink()
        onnx.write_bytes(original)
    ok = cli(project, "registry", "verify", "--version", "v0.4.0")
    assert "model files verified" in ok.stderr
    other = cli(project, "registry", "verify", "--version", "v0.1.0", check=False)
    assert other.returncode == 2 and "not the model that was registered" in other.stderr


def test_register_refuses_uncommitted_changes(history: dict[str, Any]) -> None:
    project: Path = history["project"]
    params = project / "params.yaml"
    text = params.read_text()
    params.write_text(text.replace("seed: 43", "seed: 44"))
    try:
        refused = cli(project, "registry", "register", check=False)
    finally:
        params.write_text(text)
    assert refused.returncode == 2
    assert "uncommitted changes in params.yaml" in refused.stderr
