"""A fork's own features and model through the real train stage (`commands.pipeline.train`,
in-process, on a project directory): with a ratio feature, the served API takes the raw
columns and answers like the sklearn pipeline the stage saved; with a model ONNX cannot
convert, the stage fails with a clear error and writes nothing, leaving the earlier
stages' outputs untouched.

user_model.py is swapped with monkeypatch: what a fork does by editing that file."""

from __future__ import annotations

import json
import logging
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pandas as pd
import pytest
import typer
import yaml
from tests.helpers import FIXTURE_PARAMS
from tests.serving.conftest import records
from tests.unit.test_user_model import MedianThresholdClassifier, ratio_dataset

from mlops_template import paths, user_model
from mlops_template.config import DataParams, SplitParams
from mlops_template.data import stratified_split
from mlops_template.derived_features import Product, Ratio
from mlops_template.features import feature_frame
from mlops_template.files import read_json
from mlops_template.validate import infer_schema

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

FEATURES = ["x1", "x2", "color", "size"]
EARLIER_OUTPUTS = (paths.SCHEMA, paths.TRAIN_DATA, paths.TEST_DATA)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project after the split stage: params.yaml, data/schema.json, data/split/*."""
    frame = ratio_dataset(rows=600)
    schema = infer_schema(frame, DataParams(target="label", id_columns=["customer_id"]))
    train, test = stratified_split(frame, "label", SplitParams(seed=0))
    doc = yaml.safe_load(FIXTURE_PARAMS.read_text())
    doc["train"]["model"] = "hist_gradient_boosting"
    doc["train"]["hist_gradient_boosting"]["max_iter"] = 50
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (tmp_path / "data/split").mkdir(parents=True)
    (tmp_path / paths.SCHEMA).write_text(json.dumps(schema))
    train.to_parquet(tmp_path / paths.TRAIN_DATA, index=False)
    test.to_parquet(tmp_path / paths.TEST_DATA, index=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def log() -> Any:
    handler = Records()
    logger = logging.getLogger("mlops_template")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def ratio_steps(params: Any, schema: dict[str, Any]) -> list[tuple[str, Any]]:
    return [
        ("x1_per_x2", Ratio("x1", "x2", name="x1_per_x2")),
        ("x1_times_x1_per_x2", Product("x1", "x1_per_x2", name="x1_times_x1_per_x2")),
    ]


def test_a_ratio_feature_is_served_from_raw_rows_like_the_sklearn_pipeline(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from mlops_template.commands.pipeline import train
    from mlops_template.serve import create_app, settings_from_env
    from mlops_template.train import load_skops

    monkeypatch.setattr(user_model, "feature_steps", ratio_steps)
    train()
    sklearn_pipeline = load_skops(paths.MODEL_SKOPS)  # what the stage trained and saved
    assert [n for n, _ in sklearn_pipeline.steps][:2] == ["x1_per_x2", "x1_times_x1_per_x2"]
    info = read_json(paths.TRAIN_INFO)
    assert info["parity"]["label_mismatches"] == 0
    assert info["parity_with_missing_values"]["label_mismatches"] == 0
    assert info["feature_steps"] == [
        {
            "name": "x1_per_x2",
            "class": "mlops_template.derived_features.Ratio",
            "adds": ["x1_per_x2"],
        },
        {
            "name": "x1_times_x1_per_x2",
            "class": "mlops_template.derived_features.Product",
            "adds": ["x1_times_x1_per_x2"],
        },
    ]
    assert "estimator" not in info  # the built-in one train.model names

    # the served files only: the server has no sklearn pipeline and no user_model steps
    served = project / "served"
    for rel in (paths.PARAMS, paths.SCHEMA, paths.MODEL_ONNX, paths.TRAIN_INFO):
        (served / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rel, served / rel)
    schema = read_json(paths.SCHEMA)
    test = pd.read_parquet(paths.TEST_DATA)
    rows = test[FEATURES].copy()
    rows.loc[rows.index[:3], "x2"] = 0.0  # zero denominators
    rows.loc[rows.index[3:6], "x2"] = np.nan  # a missing denominator
    rows.loc[rows.index[6:9], "x1"] = np.nan  # a missing numerator
    assert (rows["x2"] == 0).sum() >= 3
    body = records(rows, schema)
    app = create_app(settings_from_env(served), schema)
    with TestClient(app) as client:
        for _ in range(400):
            if client.get("/health").status_code == 200:
                break
            threading.Event().wait(0.025)
        answer = client.post("/predict", json=body)
        assert answer.status_code == 200, answer.text
        # the contract stays the raw columns: a derived column is not an input
        extra = client.post("/predict", json=[{**body[0], "x1_per_x2": 1.0}])
        assert extra.status_code == 422, extra.text
        assert "x1_per_x2" in extra.text
    got = answer.json()
    features = feature_frame(rows, schema)
    assert got["predictions"] == sklearn_pipeline.predict(features).astype(str).tolist()
    np.testing.assert_allclose(
        np.asarray(got["probabilities"]), sklearn_pipeline.predict_proba(features), atol=1e-5
    )
    # the ONNX graph computes the derived columns itself (from the raw inputs)
    graph = onnx.load_model_from_string((served / paths.MODEL_ONNX).read_bytes()).graph
    assert [i.name for i in graph.input] == FEATURES
    assert {"Div", "Mul", "IsInf", "Where"} <= {node.op_type for node in graph.node}


def test_a_model_onnx_cannot_convert_fails_the_stage_clearly_and_writes_nothing(
    project: Path, monkeypatch: pytest.MonkeyPatch, log: Records
) -> None:
    from mlops_template.commands.pipeline import train

    monkeypatch.setattr(user_model, "build_estimator", lambda p: MedianThresholdClassifier())
    before = {rel: (project / rel).read_bytes() for rel in EARLIER_OUTPUTS}
    with pytest.raises(typer.Exit) as exited:
        train()
    assert exited.value.exit_code == 2
    errors = [m for m in log.messages if "cannot export the model to ONNX" in m]
    assert len(errors) == 1, log.messages
    assert "pipeline step 'model'" in errors[0]
    assert "MedianThresholdClassifier" in errors[0]
    assert "user_model.py" in errors[0]
    assert errors[0].endswith("(nothing was written)")
    for output in (paths.MODEL_SKOPS, paths.MODEL_ONNX, paths.TRAIN_INFO):
        assert not (project / output).exists()
    assert not (project / "models").exists() or not any((project / "models").iterdir())
    assert {rel: (project / rel).read_bytes() for rel in EARLIER_OUTPUTS} == before
