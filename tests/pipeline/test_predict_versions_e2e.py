"""`predict --version / --stage` scores with THAT version's model: real commits, real
`dvc repro`, GTO registration tags recording each model's sha256, a local DVC remote.

One project for the module: v1.0.0 (a two-tree forest, pushed to the remote) and
v2.0.0 (a deeper forest) registered in turn, prod assigned to the older v1.0.0, the
workspace left on v2.0.0. The project has its own DVC cache (a test removes files from
it: never from the session's shared cache)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.helpers import VENV_BIN, copy_template, edit_params, run

from mlops_template.data import load_builtin
from mlops_template.registry import registration_message

pytestmark = pytest.mark.slow

ROWS = 150
BUILDS = {
    "v1.0.0": {
        "train.random_forest.n_estimators": 2,
        "train.random_forest.max_depth": 2,
        "evaluate.importance_repeats": 1,
    },
    "v2.0.0": {"train.random_forest.n_estimators": 7, "train.random_forest.max_depth": 4},
}
WATCHED = ("models/model.onnx", "models/train_info.json", "models/model.skops", "data/schema.json")


def predict(
    project: Path, rows: Path, output: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return run(
        [str(VENV_BIN / "python"), "-m", "mlops_template", "predict", "--input", str(rows),
         "--output", str(output), "--keep", "customer_id", *args],
        project, check=False, PREDICTION_LOG=str(output.with_suffix(".sqlite")),
    )  # fmt: skip


def direct(onnx: bytes, schema: dict[str, Any], rows: pd.DataFrame) -> tuple[np.ndarray, Any]:
    """The version's ONNX scored directly with onnxruntime (train.onnx_predict)."""
    from mlops_template.features import feature_frame
    from mlops_template.train import onnx_predict, onnx_session

    return onnx_predict(onnx_session(onnx), feature_frame(rows, schema), schema)


def snapshot(project: Path) -> dict[str, Any]:
    """What the user's checkout looks like: git status, HEAD, worktrees, model files."""
    return {
        "status": run(["git", "status", "--porcelain", "--ignored"], project).stdout,
        "head": run(["git", "rev-parse", "HEAD"], project).stdout,
        "worktrees": run(["git", "worktree", "list", "--porcelain"], project).stdout,
        **{f: hashlib.sha256((project / f).read_bytes()).hexdigest() for f in WATCHED},
    }


def cached_onnx(project: Path, tag: str) -> Path:
    """Where the DVC cache keeps the ONNX model of the commit of TAG."""
    lock = yaml.safe_load(run(["git", "show", f"{tag}:dvc.lock"], project).stdout)
    md5 = next(
        out["md5"]
        for stage in lock["stages"].values()
        for out in stage.get("outs", [])
        if out["path"] == "models/model.onnx"
    )
    return project / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("versions")
    project = copy_template(root / "project")  # its own cache: .dvc/cache
    remote = root / "remote"
    run(["dvc", "remote", "add", "--local", "-d", "storage", str(remote)], project)
    found: dict[str, Any] = {"root": root, "project": project, "remote": remote, "models": {}}
    for version, changes in BUILDS.items():
        edit_params(project, **changes)
        run(["dvc", "repro", "--quiet"], project)
        run(["git", "add", "-A"], project)
        run(["git", "commit", "-qm", f"train: {version}"], project)
        onnx = (project / "models/model.onnx").read_bytes()
        sha = hashlib.sha256(onnx).hexdigest()
        message = registration_message("model", version, {}, {"model.onnx": sha}, None)
        run(["git", "tag", "-a", f"model@{version}", "-m", message], project)
        found["models"][version] = (onnx, (project / "data/schema.json").read_text())
        if version == "v1.0.0":
            run(["dvc", "push", "--quiet"], project)  # v1's files are in the remote too
            run(["git", "tag", "-a", "model#prod#1", "-m", "Assign prod to v1.0.0"], project)
    assert found["models"]["v1.0.0"][0] != found["models"]["v2.0.0"][0]
    rows = load_builtin("breast_cancer").drop(columns=["target"]).sample(ROWS, random_state=1)
    found["rows"] = rows.rename_axis("customer_id").reset_index()
    found["csv"] = root / "rows.csv"  # outside the project: its git status stays as it is
    found["rows"].to_csv(found["csv"], index=False)
    return found


def expected(registry: dict[str, Any], version: str) -> tuple[np.ndarray, Any]:
    import json

    onnx, schema = registry["models"][version]
    return direct(onnx, json.loads(schema), registry["rows"])


def check_scored_with(registry: dict[str, Any], output: Path, version: str) -> None:
    """The output holds VERSION's predictions (not the other version's), and the
    prediction log labels them with VERSION."""
    from mlops_template.predlog import read_log

    got = pd.read_csv(output, dtype={"prediction": str})
    assert got["customer_id"].tolist() == registry["rows"]["customer_id"].tolist()
    labels, proba = expected(registry, version)
    probabilities = got[[c for c in got.columns if c.startswith("probability:")]].to_numpy()
    assert got["prediction"].tolist() == labels.tolist()
    # float32 sums: onnxruntime with 2 threads may add the trees in another order
    np.testing.assert_allclose(probabilities, proba, rtol=0, atol=1e-6)
    other = expected(registry, next(v for v in BUILDS if v != version))[1]
    assert np.abs(probabilities - other).max() > 0.01  # the versions' models do differ
    logged = read_log(output.with_suffix(".sqlite"))
    assert set(logged["log.model_version"]) == {version}
    assert len(logged) == ROWS


def scored(registry: dict[str, Any], project: Path, output: Path, version: str, *args: str) -> str:
    """`predict ARGS` in PROJECT succeeds and writes VERSION's predictions to OUTPUT
    (check_scored_with); its log."""
    done = predict(project, registry["csv"], output, *args)
    assert done.returncode == 0, done.stderr
    check_scored_with(registry, output, version)
    return done.stderr


def test_version_scores_with_its_model_from_the_cache_and_leaves_the_workspace_alone(
    registry: dict[str, Any],
) -> None:
    project = registry["project"]
    before = snapshot(project)
    output = registry["root"] / "v1.csv"
    log = scored(registry, project, output, "v1.0.0", "--version", "v1.0.0")
    assert "v1.0.0 (model@v1.0.0, commit" in log
    assert "restored from the DVC cache" in log
    assert f"{ROWS} rows scored of {ROWS} with model v1.0.0" in log
    assert snapshot(project) == before  # nothing checked out, built or left behind
    assert not any((project / ".dvc/tmp/worktrees").iterdir())


def test_stage_prod_scores_with_the_older_prod_version(registry: dict[str, Any]) -> None:
    project = registry["project"]
    before = snapshot(project)
    output = registry["root"] / "prod.csv"
    log = scored(registry, project, output, "v1.0.0", "--stage", "prod")
    assert "with model v1.0.0" in log
    assert snapshot(project) == before


def test_the_workspace_version_is_scored_in_place(registry: dict[str, Any]) -> None:
    project = registry["project"]
    output = registry["root"] / "v2.csv"
    log = scored(registry, project, output, "v2.0.0", "--version", "v2.0.0")
    assert "the workspace's models/model.onnx is its model" in log
    assert "temporary worktree" not in log


@pytest.fixture
def copy(registry: dict[str, Any], tmp_path: Path) -> Path:
    """The project (git, workspace, its own DVC cache and local config) copied, with
    v1.0.0's ONNX removed from the copy's cache."""
    project = tmp_path / "project"
    shutil.copytree(registry["project"], project, symlinks=True)
    cached_onnx(project, "model@v1.0.0").unlink()
    return project


def test_a_version_missing_from_the_cache_is_pulled_from_the_remote(
    registry: dict[str, Any], copy: Path
) -> None:
    output = copy.parent / "pulled.csv"
    log = scored(registry, copy, output, "v1.0.0", "--version", "v1.0.0")
    assert "restored from the DVC remote" in log
    assert cached_onnx(copy, "model@v1.0.0").is_file()  # the cache has it now


def test_a_version_in_neither_cache_nor_remote_is_exit_2_naming_it(
    registry: dict[str, Any], copy: Path
) -> None:
    run(["dvc", "remote", "remove", "--local", "storage"], copy)
    before = snapshot(copy)
    output = copy.parent / "never.csv"
    done = predict(copy, registry["csv"], output, "--stage", "prod")
    assert done.returncode == 2, done.stderr
    error = done.stderr
    assert "v1.0.0 (model@v1.0.0, commit" in error
    assert "models/model.onnx is in neither the DVC cache" in error
    assert "`dvc pull`" in error and "DVC remote" in error and "--rebuild" in error
    assert "Traceback" not in error
    assert not output.exists()
    assert snapshot(copy) == before
    assert not any((copy / ".dvc/tmp/worktrees").iterdir())

    # --rebuild: `dvc repro` at v1.0.0's commit rebuilds the same bytes (deterministic
    # training), accepted because its sha256 is the registered one
    rebuilt = scored(registry, copy, output, "v1.0.0", "--stage", "prod", "--rebuild")
    assert "restored from a rebuild (dvc repro)" in rebuilt
    assert snapshot(copy) == before


def test_files_that_are_not_the_registered_model_are_refused(
    registry: dict[str, Any], copy: Path
) -> None:
    """A registration whose recorded sha256 is not the model its commit built (a tag made
    by hand, a rewritten lock file): the files restored from the cache are refused."""
    message = registration_message("model", "v2.1.0", {}, {"model.onnx": "0" * 64}, None)
    run(["git", "tag", "-a", "model@v2.1.0", "-m", message], copy)
    output = copy.parent / "never.csv"
    done = predict(copy, registry["csv"], output, "--version", "v2.1.0")
    assert done.returncode == 2, done.stderr
    assert "v2.1.0: the models/model.onnx found at" in done.stderr
    assert "not the 000000000000... its registration recorded" in done.stderr
    assert not output.exists()


def test_a_version_whose_commit_has_no_pipeline_is_exit_2(
    registry: dict[str, Any], copy: Path
) -> None:
    empty_tree = run(["git", "hash-object", "-t", "tree", "/dev/null"], copy).stdout.strip()
    commit = run(["git", "commit-tree", empty_tree, "-m", "nothing"], copy).stdout.strip()
    message = registration_message("model", "v9.0.0", {}, {"model.onnx": "0" * 64}, None)
    run(["git", "tag", "-a", "model@v9.0.0", "-m", message, commit], copy)
    done = predict(copy, registry["csv"], copy.parent / "never.csv", "--version", "v9.0.0")
    assert done.returncode == 2, done.stderr
    assert f"v9.0.0 (model@v9.0.0, commit {commit[:8]}): that commit is not in this clone" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr


def test_a_commit_whose_dvc_lock_is_stale_is_rebuilt_to_the_registered_model(
    registry: dict[str, Any], copy: Path
) -> None:
    """params.yaml committed without its dvc.lock (the lock still records v2.0.0's
    outputs), the version registered with the model built from those params (as the
    deploy job does after `make run`): the cache gives the lock's old model, which is
    refused; --rebuild reproduces the commit's params (the run-cache has them) and that
    model, the registered one, is accepted."""
    edit_params(copy, **{"train.random_forest.n_estimators": 3, "train.random_forest.max_depth": 3})
    run(["dvc", "repro", "--quiet"], copy)
    onnx = (copy / "models/model.onnx").read_bytes()
    schema = (copy / "data/schema.json").read_text()
    run(["git", "add", "params.yaml"], copy)
    run(["git", "commit", "-qm", "params only: dvc.lock not committed"], copy)
    sha = hashlib.sha256(onnx).hexdigest()
    message = registration_message("model", "v3.0.0", {}, {"model.onnx": sha}, None)
    run(["git", "tag", "-a", "model@v3.0.0", "-m", message], copy)
    run(["git", "checkout", "--quiet", "dvc.lock"], copy)
    run(["dvc", "checkout", "--quiet"], copy)  # the workspace back on v2.0.0's model
    assert (copy / "models/model.onnx").read_bytes() == registry["models"]["v2.0.0"][0]
    output = copy.parent / "v3.csv"

    refused = predict(copy, registry["csv"], output, "--version", "v3.0.0")
    assert refused.returncode == 2, refused.stderr
    assert "v3.0.0: the models/model.onnx found at" in refused.stderr
    assert f"not the {sha[:12]}... its registration recorded" in refused.stderr
    assert "rerun with --rebuild" in refused.stderr
    assert not output.exists()

    done = predict(copy, registry["csv"], output, "--version", "v3.0.0", "--rebuild")
    assert done.returncode == 0, done.stderr
    assert "restored from a rebuild (dvc repro)" in done.stderr
    registry = registry | {"models": registry["models"] | {"v3.0.0": (onnx, schema)}}
    got = pd.read_csv(output, dtype={"prediction": str})
    labels, proba = expected(registry, "v3.0.0")
    assert got["prediction"].tolist() == labels.tolist()
    probabilities = got[[c for c in got.columns if c.startswith("probability:")]].to_numpy()
    np.testing.assert_allclose(probabilities, proba, rtol=0, atol=1e-6)
