"""This project's own checks, on its current params.yaml and data (see conftest.py).

A failure here is about the project, not the template: the message names what to fix in
params.yaml or the data. The template's own tests (everything else under tests/) never
read either."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import yaml
from tests.helpers import TEMPLATE_ROOT, run
from tests.project.conftest import ProjectBuild
from tests.serving.conftest import start_server, stop_server

from mlops_template import paths
from mlops_template.config import ParamsError, load_params


def test_params_yaml_is_valid_and_its_data_exists(project_build: ProjectBuild) -> None:
    try:
        load_params(TEMPLATE_ROOT / "params.yaml")
    except ParamsError as error:
        pytest.fail("params.yaml:\n" + "\n".join(error.problems))
    # what `make check` runs: also refuses a data.source file that is not there
    done = run([sys.executable, "-m", "mlops_template", "check"], project_build.root, check=False)
    assert done.returncode == 0, done.stderr


def test_the_sweep_space_gives_trials() -> None:
    """`make sweep` has something to run: the params' sweep.space (when it lists any) gives
    trials. Whether its keys belong to train.model is checked by `sweep run` itself, so
    switching the model by params never fails `make test`."""
    from mlops_template.sweep import trials

    params = load_params(TEMPLATE_ROOT / "params.yaml")
    if not params.sweep.space:
        pytest.skip("sweep.space is empty: `make sweep` has nothing to search")
    assert trials(params.sweep), f"sweep.space {params.sweep.space} gives no trials"


def _stage_inputs(stage: dict[str, Any]) -> tuple[Any, Any]:
    deps = sorted((d["path"], d.get("md5"), d.get("size")) for d in stage.get("deps", []))
    return deps, stage.get("params")


def test_the_pipeline_reproduces_what_dvc_lock_records(project_build: ProjectBuild) -> None:
    """`dvc repro` passes on the project's params and data, leaves `dvc status` clean, and
    every stage whose inputs (code, data, params) are as the committed dvc.lock records
    produces byte-identical outputs. Stages with other inputs (params.yaml edited and not
    yet reproduced: the PR check or `make run` will) are not compared."""
    root = project_build.require()
    status = run([sys.executable, "-m", "dvc", "status", "--quiet"], root, check=False)
    assert status.returncode == 0, f"dvc status is not clean after dvc repro:\n{status.stdout}"
    committed_file = TEMPLATE_ROOT / "dvc.lock"
    if not committed_file.exists():
        return  # never reproduced and committed: nothing recorded to compare with
    committed = (yaml.safe_load(committed_file.read_text()) or {}).get("stages", {})
    reproduced = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    differing = []
    for name, stage in reproduced.items():
        before = committed.get(name)
        if before is None or _stage_inputs(before) != _stage_inputs(stage):
            continue
        outs = {o["path"]: o.get("md5") for o in stage.get("outs", [])}
        recorded = {o["path"]: o.get("md5") for o in before.get("outs", [])}
        differing += [
            f"{name}: {path} (dvc.lock md5 {recorded.get(path)}, reproduced {md5})"
            for path, md5 in outs.items()
            if recorded.get(path) != md5
        ]
    assert not differing, (
        "same code, data and params as dvc.lock records, other outputs (the pipeline is "
        "not deterministic, or dvc.lock was edited):\n" + "\n".join(differing)
    )


def test_the_model_passes_its_own_gate(project_build: ProjectBuild) -> None:
    """The gate params.yaml declares (gate.*), on the model alone (no base model: the
    regression rules need one, the PR check applies them). gate.mode: warn never fails."""
    from mlops_template.compare import compare, decide_gate, workspace_side

    root = project_build.require()
    params = load_params(root / paths.PARAMS)
    test = pd.read_parquet(root / paths.TEST_DATA)
    comparison = compare(workspace_side(root), None, test, params.compare, params.gate)
    decision = decide_gate(comparison, params.gate)
    assert not decision.blocking, (
        "the model fails the gate params.yaml declares (gate.*): improve the model or set "
        "gate floors your data allows:\n" + "\n".join(decision.reasons)
    )


def _row_from_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """One plausible request row from the schema alone: each numeric feature at its
    training mean (an integer one rounded), each categorical one at its first level."""
    row: dict[str, Any] = {}
    for feature in schema["features"]:
        if feature["kind"] == "numeric":
            value = feature.get("mean")
            value = 0.0 if value is None or not math.isfinite(value) else value
            row[feature["name"]] = round(value) if feature.get("integer") else value
        else:
            row[feature["name"]] = next(iter(feature.get("levels") or []), "value")
    return row


def test_the_api_answers_rows_of_the_projects_schema(
    project_build: ProjectBuild, tmp_path: Path
) -> None:
    from tests.serving.conftest import records

    root = project_build.require()
    schema = yaml.safe_load((root / paths.SCHEMA).read_text())  # JSON is YAML
    test_rows = records(pd.read_parquet(root / paths.TEST_DATA).head(20), schema)
    body = [_row_from_schema(schema), *test_rows]
    server = start_server(root, tmp_path / "server.log", PREDICTION_LOG="off")
    try:
        answer = httpx.post(f"{server.url}/predict", json=body, timeout=60)
    finally:
        stop_server(server)
    assert answer.status_code == 200, f"{answer.status_code}: {answer.text}\n{server.output()}"
    got = answer.json()
    if schema.get("task") == "regression":  # one finite number per row
        assert len(got["predictions"]) == len(body) and "classes" not in got
        assert all(isinstance(v, float) and math.isfinite(v) for v in got["predictions"])
        return
    classes = [str(c) for c in schema["classes"]]
    assert got["classes"] == classes
    assert len(got["predictions"]) == len(body)
    assert set(got["predictions"]) <= set(classes)
    for probabilities in got["probabilities"]:
        assert len(probabilities) == len(classes)
        assert math.isclose(sum(probabilities), 1.0, abs_tol=1e-6)
