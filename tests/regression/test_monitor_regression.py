"""Drift of a regression model's predictions (batch files): the predicted values are a
numeric column the drift check compares like a feature; labelled batches need numbers."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_template.commands.monitor import _logged_predictions, _model_predictions
from mlops_template.config import DataParams, MonitorParams, SplitParams, TrainParams
from mlops_template.data import DataError, load_builtin, stratified_split
from mlops_template.monitor import PREDICTED_VALUE, check_drift, prepare_feedback
from mlops_template.train import fit_pipeline, to_onnx
from mlops_template.validate import infer_schema


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    frame = load_builtin("diabetes")
    schema = infer_schema(frame, DataParams(source="sklearn:diabetes"))
    train, test = stratified_split(frame, "target", SplitParams(test_size=0.5), "regression")
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    path.write_bytes(to_onnx(fit_pipeline(train, schema, TrainParams()), schema))
    return {"schema": schema, "train": train, "test": test, "path": path}


def test_shifted_inputs_drift_the_predicted_values(model: dict) -> None:
    schema, train, test = model["schema"], model["train"], model["test"]
    reference_predictions = _model_predictions(model["path"], test, schema)
    assert list(reference_predictions.columns) == [PREDICTED_VALUE]
    params = MonitorParams(min_rows=100)
    same = check_drift(
        train, test, schema, params, reference_predictions, reference_predictions.copy()
    )
    assert not any(c.drifted for c in same.predictions)
    shifted = test.assign(bmi=test["bmi"] + 8, s5=test["s5"] + 0.8)  # heavier, sicker
    current_predictions = _model_predictions(model["path"], shifted, schema)
    assert (
        current_predictions[PREDICTED_VALUE].mean() > reference_predictions[PREDICTED_VALUE].mean()
    )
    drifted = check_drift(
        train, shifted, schema, params, reference_predictions, current_predictions
    )
    [prediction] = drifted.predictions
    assert prediction.name == PREDICTED_VALUE and prediction.drifted


def test_logged_values_are_the_predicted_value_column(model: dict) -> None:
    from mlops_template import predlog

    logged = pd.DataFrame({predlog.PREDICTION: pd.Series([151.5, 80.25, None], dtype=object)})
    predictions, note = _logged_predictions(logged, model["schema"])
    assert note is None
    assert predictions[PREDICTED_VALUE].tolist()[:2] == [151.5, 80.25]
    assert pd.isna(predictions[PREDICTED_VALUE].iloc[2])


def test_a_log_window_with_class_labels_is_not_read_as_values(model: dict) -> None:
    from mlops_template import predlog

    mixed = pd.DataFrame({predlog.PREDICTION: pd.Series([151.5, "malignant"], dtype=object)})
    predictions, note = _logged_predictions(mixed, model["schema"])
    assert predictions is None and "'malignant'" in note and "--model-version" in note
    predictions, note = _logged_predictions(pd.DataFrame(), model["schema"])
    assert predictions is None and "no predictions" in note


def test_a_prepare_feedback_needs_numeric_targets(model: dict, tmp_path: Path) -> None:
    schema, test = model["schema"], model["test"]
    frame, extra = prepare_feedback(test, schema, "batch.csv")
    assert len(frame) == len(test) and extra == []
    bad = test.astype({"target": object})
    bad.loc[bad.index[0], "target"] = "high"
    with pytest.raises(
        DataError, match=r"batch.csv: target column 'target' has value\(s\) \['high'\]"
    ):
        prepare_feedback(bad, schema, "batch.csv")
