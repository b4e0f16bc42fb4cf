"""LightGBM and XGBoost as `train.model` choices (lightgbm | xgboost), binary, multiclass
and regression: trained by the real train stage (`commands.pipeline.train`, in-process,
on a project directory), exported to ONNX with onnxmltools' converters, ONNX predicting
like the native model within the params' tolerances, the FastAPI app serving the native
model's predictions, and the same inputs giving byte-identical model files."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from tests.conftest import mixed_dataset, mixed_regression_dataset
from tests.helpers import FIXTURE_CHURN_CSV, FIXTURE_PARAMS, edit_params, run
from tests.serving.conftest import records

from mlops_template import paths
from mlops_template.config import DataParams, SplitParams, TrainParams
from mlops_template.data import load_builtin, stratified_split
from mlops_template.features import feature_frame, target_labels
from mlops_template.files import read_json
from mlops_template.train import (
    check_parity,
    check_value_parity,
    fit_pipeline,
    load_skops,
    missing_value_probes,
    onnx_predict,
    onnx_predict_values,
    onnx_session,
    to_onnx,
)
from mlops_template.validate import infer_schema

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

MODELS = ["lightgbm", "xgboost"]
ESTIMATORS = {
    ("lightgbm", "classification"): "lightgbm.sklearn.LGBMClassifier",
    ("lightgbm", "regression"): "lightgbm.sklearn.LGBMRegressor",
    ("xgboost", "classification"): "mlops_template.boosting.LabelledXGBClassifier",
    ("xgboost", "regression"): "xgboost.sklearn.XGBRegressor",
}
MODEL_FILES = (paths.MODEL_SKOPS, paths.MODEL_ONNX, paths.TRAIN_INFO)


def dataset(name: str) -> tuple[pd.DataFrame, DataParams]:
    """binary: churn (string labels yes/no, categorical columns); multiclass: the mixed
    frame (three string classes, categoricals, missing values); regression: the mixed
    regression frame; and sklearn's breast_cancer, wine, diabetes."""
    if name == "churn":
        frame = pd.read_csv(FIXTURE_CHURN_CSV)
        return frame, DataParams(source="data/external/churn.csv", target="churn", id_columns=["customer_id"])  # fmt: skip
    if name == "mixed":
        frame = mixed_dataset(rows=500, seed=3)
    elif name == "mixed_regression":
        frame = mixed_regression_dataset(rows=500, seed=4)
    else:
        return load_builtin(name), DataParams(source=f"sklearn:{name}")
    return frame, DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"])  # fmt: skip


def split(name: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    frame, data = dataset(name)
    schema = infer_schema(frame, data)
    train, test = stratified_split(frame, data.target, SplitParams(), schema["task"])
    return train, test, schema


def make_project(root: Path, name: str, model: str) -> Path:
    """A project after the split stage, with train.model: `model` in its params.yaml."""
    train, test, schema = split(name)
    doc = yaml.safe_load(FIXTURE_PARAMS.read_text())
    doc["train"]["model"] = model
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (root / "data/split").mkdir(parents=True)
    (root / paths.SCHEMA).write_text(json.dumps(schema))
    train.to_parquet(root / paths.TRAIN_DATA, index=False)
    test.to_parquet(root / paths.TEST_DATA, index=False)
    return root


def digests(root: Path) -> dict[str, str]:
    return {str(rel): hashlib.sha256((root / rel).read_bytes()).hexdigest() for rel in MODEL_FILES}


@pytest.mark.parametrize("name", ["churn", "mixed", "mixed_regression"])
@pytest.mark.parametrize("model", MODELS)
def test_the_train_stage_trains_exports_and_serves_the_native_predictions(
    model: str, name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.testclient import TestClient

    from mlops_template.commands.pipeline import train
    from mlops_template.serve import create_app, settings_from_env

    project = make_project(tmp_path / "project", name, model)
    monkeypatch.chdir(project)
    train()
    schema = read_json(paths.SCHEMA)
    regression = schema["task"] == "regression"
    assert schema["task"] == {"churn": "binary", "mixed": "multiclass"}.get(name, "regression")
    native = load_skops(paths.MODEL_SKOPS)  # through the allow-list, no pickle
    estimator = type(native.steps[-1][1])
    kind = "regression" if regression else "classification"
    assert f"{estimator.__module__}.{estimator.__qualname__}" == ESTIMATORS[model, kind]
    info = read_json(paths.TRAIN_INFO)
    assert info["model"] == model and "estimator" not in info  # the built-in choice
    assert info["hyperparameters"] == TrainParams(model=model).estimator_params.model_dump()
    first = digests(project)

    test = pd.read_parquet(paths.TEST_DATA)
    features = feature_frame(test, schema)
    session = onnx_session(paths.MODEL_ONNX)
    if regression:
        tolerance = TrainParams().onnx_value_tolerance
        for record in (info["parity"], info["parity_with_missing_values"]):
            assert record["mismatches"] == 0 and record["max_scaled_difference"] <= tolerance
        values = onnx_predict_values(session, features, schema)
        expected = native.predict(features)
        assert np.all(np.abs(values - expected) <= tolerance * np.maximum(1, np.abs(expected)))
        y = target_labels(test, schema)
        assert np.mean((values - y) ** 2) < 0.5 * np.var(y)  # learnt, not a constant
    else:
        tolerance = TrainParams().onnx_probability_tolerance
        for record in (info["parity"], info["parity_with_missing_values"]):
            assert record["label_mismatches"] == 0
            assert record["max_probability_difference"] <= tolerance
        labels, proba = onnx_predict(session, features, schema)
        assert labels.tolist() == native.predict(features).astype(str).tolist()
        np.testing.assert_allclose(proba, native.predict_proba(features), atol=tolerance)
        assert set(labels) == set(schema["classes"])  # string labels, every class predicted
        assert np.mean(labels == target_labels(test, schema)) > 0.6

    # serving: the app has the served files only (ONNX), no native model
    served = project / "served"
    for rel in (paths.PARAMS, paths.SCHEMA, paths.MODEL_ONNX, paths.TRAIN_INFO):
        (served / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rel, served / rel)
    rows = test[[f["name"] for f in schema["features"]]].copy()
    rows.iloc[:5, 0] = np.nan  # nulls are imputed in the graph, as by sklearn
    with TestClient(create_app(settings_from_env(served), schema)) as client:
        for _ in range(400):
            if client.get("/health").status_code == 200:
                break
            threading.Event().wait(0.025)
        answer = client.post("/predict", json=records(rows, schema))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    rows_features = feature_frame(rows, schema)
    if regression:
        got = np.asarray(body["predictions"], dtype=np.float64)
        expected = native.predict(rows_features)
        assert np.all(np.abs(got - expected) <= tolerance * np.maximum(1, np.abs(expected)))
    else:
        assert body["predictions"] == native.predict(rows_features).astype(str).tolist()
        np.testing.assert_allclose(
            np.asarray(body["probabilities"]), native.predict_proba(rows_features), atol=tolerance
        )

    # determinism: the same inputs train the same model, byte for byte
    train()
    assert digests(project) == first


@pytest.mark.parametrize("name", ["breast_cancer", "wine", "diabetes"])
@pytest.mark.parametrize("model", MODELS)
def test_onnx_parity_on_the_builtin_datasets(model: str, name: str) -> None:
    train, test, schema = split(name)
    params = TrainParams(model=model)
    pipeline = fit_pipeline(train, schema, params)
    onnx_model = to_onnx(pipeline, schema)
    probes = missing_value_probes(test, schema)
    if schema["task"] == "regression":
        for rows in (test, probes):
            parity = check_value_parity(
                pipeline, onnx_model, rows, schema, params.onnx_value_tolerance
            )
            assert parity.passed and parity.rows == len(rows), parity
    else:
        for rows in (test, probes):
            parity = check_parity(
                pipeline, onnx_model, rows, schema, params.onnx_probability_tolerance
            )
            assert parity.passed and parity.rows == len(rows), parity
    # two fits, same ONNX bytes
    assert to_onnx(fit_pipeline(train, schema, params), schema) == onnx_model


@pytest.mark.parametrize("model", MODELS)
def test_parity_catches_a_different_boosted_model(model: str) -> None:
    """The check can fail: a model trained with another seed and subsampling differs."""
    train, test, schema = split("breast_cancer")
    params = TrainParams(model=model)
    pipeline = fit_pipeline(train, schema, params)
    other_params = TrainParams.model_validate(
        {"model": model, "seed": 7, model: {"subsample": 0.5, "colsample_bytree": 0.5}}
    )
    other = to_onnx(fit_pipeline(train, schema, other_params), schema)
    parity = check_parity(pipeline, other, test, schema, params.onnx_probability_tolerance)
    assert not parity.passed and parity.max_probability_difference > 0.01


@pytest.mark.parametrize("model", MODELS)
def test_hyperparameters_reach_the_estimator(model: str) -> None:
    train, _, schema = split("breast_cancer")
    section = {"n_estimators": 7, "learning_rate": 0.3, "max_depth": 3}
    pipeline = fit_pipeline(train, schema, TrainParams.model_validate({"model": model, model: section, "seed": 5}))  # fmt: skip
    estimator = pipeline.steps[-1][1]
    got = estimator.get_params()
    assert {k: got[k] for k in section} == section
    assert got["random_state"] == 5 and got["n_jobs"] == 1
    if model == "lightgbm":
        assert got["deterministic"] is True and got["force_row_wise"] is True
        assert estimator.booster_.num_trees() == 7
    else:
        assert got["tree_method"] == "hist"
        assert estimator.get_booster().num_boosted_rounds() == 7


def test_lightgbm_class_weight_on_a_regression_target_names_the_key() -> None:
    from mlops_template.train import ModelError, build_pipeline

    _, _, schema = split("diabetes")
    params = TrainParams.model_validate(
        {"model": "lightgbm", "lightgbm": {"class_weight": "balanced"}}
    )
    with pytest.raises(ModelError, match=r"train\.lightgbm\.class_weight: 'balanced'"):
        build_pipeline(schema, params)


def test_an_unknown_type_in_a_boosted_model_file_is_still_refused(tmp_path: Path) -> None:
    """Trusting LightGBM/XGBoost by exact name does not open the allow-list to their
    modules: another class of xgboost is refused."""
    import skops.io as sio
    from xgboost import XGBRFRegressor

    from mlops_template.train import ModelError

    train, _, schema = split("diabetes")
    pipeline = fit_pipeline(train, schema, TrainParams(model="xgboost"))
    forest = XGBRFRegressor(n_estimators=3, n_jobs=1).fit(
        np.zeros((8, 1)), np.arange(8, dtype=float)
    )
    pipeline.steps[-1] = ("model", forest)
    path = tmp_path / "model.skops"
    path.write_bytes(sio.dumps(pipeline))
    with pytest.raises(ModelError, match=r"xgboost\.sklearn\.XGBRFRegressor"):
        load_skops(path)


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_the_train_stage_is_byte_identical_across_processes(model: str, tmp_path: Path) -> None:
    """`python -m mlops_template train` twice, with other string-hash seeds and memory
    addresses: the same skops, ONNX and train_info bytes."""
    project = make_project(tmp_path / "project", "churn", model)
    results = []
    for hash_seed in ("1", "2"):
        run([sys.executable, "-m", "mlops_template", "train"], project, PYTHONHASHSEED=hash_seed)
        results.append(digests(project))
    assert results[0] == results[1]


@pytest.mark.slow
def test_a_params_only_switch_to_lightgbm_runs_the_pipeline_end_to_end(
    fresh_project: Path,
) -> None:
    """A fork's day-one change: `train.model: lightgbm` in params.yaml (nothing else) and
    `dvc repro evaluate` ingests, validates, splits, trains (ONNX parity checked) and
    evaluates the ONNX model on the fixture data; a second repro runs nothing."""
    edit_params(fresh_project, **{"train.model": "lightgbm"})
    run(["git", "commit", "-qam", "train.model: lightgbm"], fresh_project)
    done = run(["dvc", "repro", "evaluate"], fresh_project)
    assert "Running stage 'train'" in done.stdout, done.stdout
    info = read_json(fresh_project / paths.TRAIN_INFO)
    assert info["model"] == "lightgbm" and "estimator" not in info
    assert info["parity"]["label_mismatches"] == 0
    assert info["parity"]["max_probability_difference"] <= info["parity"]["tolerance"]
    assert info["hyperparameters"]["num_leaves"] == 31
    skops_types = run(
        [sys.executable, "-c", "import skops.io as s, sys; print(s.get_untrusted_types(file=sys.argv[1]))", paths.MODEL_SKOPS.as_posix()],
        fresh_project,
    ).stdout  # fmt: skip
    assert "lightgbm.sklearn.LGBMClassifier" in skops_types
    metrics = read_json(fresh_project / paths.METRICS)
    assert metrics["roc_auc"] > 0.95  # breast_cancer: a real model
    again = run(["dvc", "repro", "evaluate"], fresh_project)
    assert "Running stage" not in again.stdout, again.stdout
