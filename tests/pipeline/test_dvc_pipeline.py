"""The pipeline under real `dvc` and `git`, in temporary copies of the template.

The session's `built_project` has run `dvc repro` once on the default data; the other
projects share its DVC cache, so stages they have in common restore from the run-cache.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from tests.conftest import mixed_dataset
from tests.helpers import edit_params, link_venv, run, uv_binary

pytestmark = pytest.mark.slow

STAGES = ["ingest", "validate", "split", "train", "evaluate"]
OUTPUTS = [
    "data/raw/dataset.parquet",
    "data/schema.json",
    "reports/validation.json",
    "reports/validation.md",
    "data/split/train.parquet",
    "data/split/test.parquet",
    "models/model.skops",
    "models/model.onnx",
    "models/train_info.json",
    "eval/metrics.json",
    "eval/importance.json",
    "eval/plots/custom/roc.json",
    "eval/plots/custom/precision_recall.json",
    "eval/plots/custom/confusion_matrix.json",
    "eval/plots/custom/importance.json",
    "eval/baseline.json",
]


def ran(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


def unchanged(output: str) -> list[str]:
    return re.findall(r"Stage '(\w+)' didn't change, skipping", output)


def restored(output: str) -> list[str]:
    return re.findall(r"Stage '(\w+)' is cached - skipping run, checking out outputs", output)


def repro(project: Path, *args: str) -> str:
    done = run(["dvc", "repro", *args], project)
    return done.stdout + done.stderr


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fingerprint(project: Path, rels: list[str]) -> dict[str, tuple[str, int]]:
    return {r: (sha(project / r), (project / r).stat().st_mtime_ns) for r in rels}


def commit(project: Path, message: str, *paths: str) -> None:
    run(["git", "add", *paths], project)
    # --allow-empty: when the template's committed dvc.lock is current, nothing changes
    run(["git", "commit", "-qm", message, "--allow-empty"], project)


@pytest.fixture
def reproduced(built_project: Path, fresh_project: Path) -> Path:
    """A writable copy with every output in place (restored from the shared run-cache,
    which the session's built_project filled), committed."""
    output = repro(fresh_project)
    assert ran(output) == [], output  # same code, data and params: nothing recomputed
    assert sorted(restored(output)) == sorted(STAGES), output
    commit(fresh_project, "reproduce", "dvc.lock")
    return fresh_project


def test_full_repro_writes_every_output(built_project: Path) -> None:
    for rel in OUTPUTS:
        assert (built_project / rel).is_file(), rel
    lock = yaml.safe_load((built_project / "dvc.lock").read_text())
    assert list(lock["stages"]) == STAGES
    metrics = json.loads((built_project / "eval/metrics.json").read_text())
    for name in ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss"):
        assert 0 <= metrics[name] <= 1 or name == "log_loss", (name, metrics[name])
    assert set(metrics["per_class"]) == {"benign", "malignant"}
    assert (
        metrics["per_class"]["malignant"]["support"] + metrics["per_class"]["benign"]["support"]
        == metrics["test_rows"]
    )
    info = json.loads((built_project / "models/train_info.json").read_text())
    assert info["sha256"]["model.onnx"] == sha(built_project / "models/model.onnx")
    assert info["sha256"]["model.skops"] == sha(built_project / "models/model.skops")
    assert (
        (built_project / "reports/validation.md")
        .read_text()
        .startswith("# Data validation: PASSED")
    )
    roc = json.loads((built_project / "eval/plots/custom/roc.json").read_text())
    assert len(roc) == 101 and roc[-1]["tpr"] == 1.0
    # DVC knows the metrics and plots
    shown = run(["dvc", "metrics", "show", "--json"], built_project).stdout
    assert "roc_auc" in shown
    plots = run(["dvc", "plots", "show", "--json"], built_project).stdout
    assert "eval/plots/custom/roc.json" in plots


def test_outputs_are_git_ignored_and_cached_as_hardlinks(built_project: Path) -> None:
    ignored = run(["git", "check-ignore", *OUTPUTS], built_project).stdout.split()
    assert ignored == OUTPUTS
    model = built_project / "models/model.onnx"
    digest = hashlib.md5(model.read_bytes()).hexdigest()
    cache = Path(run(["dvc", "cache", "dir"], built_project).stdout.strip())
    cached = cache / "files" / "md5" / digest[:2] / digest[2:]
    # the workspace file is the cache file (a hard link): the bytes are stored once
    assert cached.exists() and model.samefile(cached)


def test_second_repro_runs_no_stage(built_project: Path) -> None:
    output = repro(built_project)
    assert ran(output) == [], output
    assert unchanged(output) == STAGES, output
    assert "Data and pipelines are up to date" in run(["dvc", "status"], built_project).stdout


def test_changing_a_train_param_reruns_exactly_train_and_evaluate(reproduced: Path) -> None:
    metrics_before = (reproduced / "eval/metrics.json").read_text()
    baseline_before = (reproduced / "eval/baseline.json").read_text()
    edit_params(reproduced, **{"train.random_forest.n_estimators": 40})
    diff = run(["dvc", "params", "diff", "--json"], reproduced).stdout
    changed = json.loads(diff)["params.yaml"]
    assert list(changed) == ["train.random_forest.n_estimators"]
    assert (
        changed["train.random_forest.n_estimators"]["old"],
        changed["train.random_forest.n_estimators"]["new"],
    ) == (100, 40)
    output = repro(reproduced)
    assert ran(output) == ["train", "evaluate"], output
    assert unchanged(output) == ["ingest", "validate", "split"], output
    assert (reproduced / "eval/metrics.json").read_text() != metrics_before
    # train refits the gate's baselines too: the same rows give the same baselines
    assert (reproduced / "eval/baseline.json").read_text() == baseline_before
    info = json.loads((reproduced / "models/train_info.json").read_text())
    assert info["hyperparameters"]["n_estimators"] == 40


def test_fresh_clone_with_a_remote_pulls_instead_of_recomputing(
    reproduced: Path, tmp_path: Path
) -> None:
    remote = tmp_path / "dvc-remote"
    run(["dvc", "remote", "add", "-d", "storage", str(remote)], reproduced)
    commit(reproduced, "add the DVC remote", ".dvc/config")
    run(["dvc", "push", "--run-cache"], reproduced)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(reproduced), str(clone)], tmp_path)
    assert not (clone / "models").exists()
    output = repro(clone, "--pull")
    assert ran(output) == [], output
    for rel in OUTPUTS:
        assert sha(clone / rel) == sha(reproduced / rel), rel
    assert "Data and pipelines are up to date" in run(["dvc", "status"], clone).stdout


def test_mixed_type_three_class_dataset_runs_by_editing_params_only(fresh_project: Path) -> None:
    frame = mixed_dataset(rows=600, seed=1)
    frame["comment"] = [f"free text {i}" for i in range(len(frame))]  # a column to ignore
    frame.to_csv(fresh_project / "data/external/customers.csv", index=False)
    edit_params(
        fresh_project,
        **{
            "data.source": "data/external/customers.csv",
            "data.target": "label",
            "data.id_columns": ["customer_id"],
            "data.drop_columns": ["comment"],
        },
    )
    run(["python", "-m", "mlops_template", "check"], fresh_project)
    output = repro(fresh_project)
    assert ran(output) == STAGES, output

    schema = json.loads((fresh_project / "data/schema.json").read_text())
    assert schema["task"] == "multiclass" and schema["classes"] == ["high", "low", "mid"]
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    assert kinds == {
        "x1": "numeric",
        "x2": "numeric",
        "color": "categorical",
        "size": "categorical",
    }
    assert next(f for f in schema["features"] if f["name"] == "x2")["nullable"]
    metrics = json.loads((fresh_project / "eval/metrics.json").read_text())
    assert set(metrics["per_class"]) == {"high", "low", "mid"}
    assert metrics["balanced_accuracy"] > 0.6 and metrics["roc_auc"] > 0.8  # chance: 1/3, 0.5
    roc = json.loads((fresh_project / "eval/plots/custom/roc.json").read_text())
    assert {row["class"] for row in roc} == {"high", "low", "mid"}
    importance = json.loads((fresh_project / "eval/importance.json").read_text())
    assert {row["feature"] for row in importance} == set(kinds)
    assert importance[0]["feature"] in {"x1", "x2", "color"}  # the informative inputs
    # the ONNX model takes the raw columns, strings included, and predicts every class
    from mlops_template.features import feature_frame
    from mlops_template.train import onnx_predict, onnx_session

    _, proba = onnx_predict(
        onnx_session(fresh_project / "models/model.onnx"),
        feature_frame(frame.head(50), schema),
        schema,
    )
    assert proba.shape == (50, 3) and np.allclose(proba.sum(axis=1), 1)


def test_bad_param_stops_make_repro_before_dvc_deletes_anything(reproduced: Path) -> None:
    before = fingerprint(reproduced, OUTPUTS)
    edit_params(reproduced, **{"train.random_forest.n_estimators": -3})
    link_venv(reproduced)
    done = subprocess.run(
        # -o: the borrowed environment is never re-synced (that would re-point its
        # editable install at this copy, which is deleted after the test)
        ["make", "-o", ".venv/.synced", "repro", f"UV={uv_binary()}"],
        cwd=reproduced,
        capture_output=True,
        text=True,
    )
    (reproduced / ".venv").unlink()
    assert done.returncode != 0
    assert "train.random_forest.n_estimators: -3 must be greater than 0" in done.stderr
    assert "Running stage" not in done.stdout + done.stderr
    assert fingerprint(reproduced, OUTPUTS) == before


def test_bad_data_stops_the_pipeline_at_validate_and_keeps_the_model(reproduced: Path) -> None:
    frame = mixed_dataset(rows=300, seed=2)
    frame["leak"] = frame["label"].map({"low": "L", "mid": "M", "high": "H"})
    frame.to_csv(reproduced / "data/external/leaky.csv", index=False)
    edit_params(
        reproduced,
        **{
            "data.source": "data/external/leaky.csv",
            "data.target": "label",
            "data.id_columns": ["customer_id"],
        },
    )
    model_before = fingerprint(reproduced, ["models/model.onnx", "models/model.skops"])
    done = run(["dvc", "repro"], reproduced, check=False)
    assert done.returncode != 0
    output = done.stdout + done.stderr
    assert ran(output) == ["ingest", "validate"], output
    assert "column 'leak' fails rule leakage" in output
    report = json.loads((reproduced / "reports/validation.json").read_text())
    assert [(f["rule"], f["column"]) for f in report["failures"]] == [("leakage", "leak")]
    assert fingerprint(reproduced, ["models/model.onnx", "models/model.skops"]) == model_before
