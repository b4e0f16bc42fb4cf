"""`dvc repro` end to end on regression data: sklearn's diabetes dataset (shipped inside
scikit-learn) and a generated mixed-type CSV, in temporary git copies of the template
built on the template's own fixtures (tests/fixtures/params.yaml)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from tests.conftest import mixed_regression_dataset
from tests.helpers import copy_template, edit_params, run

pytestmark = pytest.mark.slow

STAGES = ["ingest", "validate", "split", "train", "evaluate"]


def repro(project: Path, *args: str) -> str:
    done = run(["dvc", "repro", *args], project)
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def diabetes_project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    project = copy_template(tmp_path_factory.mktemp("diabetes") / "project")
    edit_params(project, **{"data.source": "sklearn:diabetes"})
    return project, repro(project)


def test_diabetes_repro_infers_regression_and_writes_every_output(
    diabetes_project: tuple[Path, str],
) -> None:
    project, output = diabetes_project
    assert re.findall(r"Running stage '(\w+)'", output) == STAGES
    assert "task: regression (data.task: auto and target 'target' is numeric with" in output
    schema = json.loads((project / "data/schema.json").read_text())
    assert schema["task"] == "regression" and "classes" not in schema
    metrics = json.loads((project / "eval/metrics.json").read_text())
    assert set(metrics) == {"rmse", "mae", "r2", "mape", "test_rows"}
    assert metrics["test_rows"] == round(442 * 0.25)
    assert 0.2 < metrics["r2"] < 1 and metrics["mae"] < metrics["rmse"]
    points = json.loads((project / "eval/plots/custom/predictions.json").read_text())
    assert len(points) == metrics["test_rows"]
    assert all(abs(p["predicted"] - p["actual"] - p["residual"]) < 1e-5 for p in points)
    for name in ("roc", "precision_recall", "confusion_matrix"):
        assert json.loads((project / f"eval/plots/custom/{name}.json").read_text()) == []
    baseline = json.loads((project / "eval/baseline.json").read_text())
    assert set(baseline["models"]) == {"mean", "linear"}
    assert baseline["models"]["mean"]["rmse"] > metrics["rmse"]
    info = json.loads((project / "models/train_info.json").read_text())
    assert info["parity"]["mismatches"] == 0 and info["parity"]["rows"] == metrics["test_rows"]
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    assert list(lock["stages"]) == STAGES


def test_diabetes_repro_again_runs_nothing(diabetes_project: tuple[Path, str]) -> None:
    project, _ = diabetes_project
    output = repro(project)
    assert re.findall(r"Running stage '(\w+)'", output) == [], output


def test_mixed_type_csv_regression_repro(tmp_path: Path) -> None:
    project = copy_template(tmp_path / "project")
    (project / "data/external").mkdir(parents=True, exist_ok=True)
    mixed_regression_dataset(rows=500, seed=2).to_csv(
        project / "data/external/prices.csv", index=False
    )
    edit_params(
        project,
        **{
            "data.source": "data/external/prices.csv",
            "data.target": "label",
            "data.id_columns": ["customer_id"],
            "train.model": "hist_gradient_boosting",
        },
    )
    output = repro(project)
    assert "task: regression" in output
    metrics = json.loads((project / "eval/metrics.json").read_text())
    assert metrics["r2"] > 0.7  # the generated signal is learnable
    importance = json.loads((project / "eval/importance.json").read_text())
    assert importance[0]["feature"] == "x1"


def test_forcing_classification_on_diabetes_fails_validation(tmp_path: Path) -> None:
    project = copy_template(tmp_path / "project")
    edit_params(project, **{"data.source": "sklearn:diabetes", "data.task": "classification"})
    done = run(["dvc", "repro"], project, check=False)
    assert done.returncode != 0
    assert "looks like regression; set data.task: regression" in done.stdout + done.stderr
