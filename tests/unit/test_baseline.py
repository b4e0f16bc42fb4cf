"""The gate's reference models (fitted by the train stage): what each one scores, on which rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_template.baseline import baseline_metrics, majority_proba
from mlops_template.config import TrainParams
from mlops_template.data import frame_hash, read_parquet, read_parquet_sample


def _schema(classes: list[str]) -> dict:
    return {
        "target": "y",
        "classes": classes,
        "features": [
            {"name": "x", "kind": "numeric"},
            {"name": "colour", "kind": "categorical"},
        ],
    }


def _frame(rows: int, seed: int, classes: list[str]) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    cuts = np.quantile(x, np.linspace(0, 1, len(classes) + 1)[1:-1])
    y = np.asarray(classes)[np.searchsorted(cuts, x + rng.normal(scale=0.3, size=rows))]
    colour = rng.choice(["red", "blue", None], size=rows)
    return pd.DataFrame({"x": x, "colour": colour, "y": y})


@pytest.mark.parametrize("classes", [["no", "yes"], ["a", "b", "c", "d"]])
def test_majority_is_chance_and_linear_learns(classes: list[str]) -> None:
    train, test = _frame(400, 0, classes), _frame(200, 1, classes)
    result = baseline_metrics(train, test, _schema(classes))
    majority, linear = result["models"]["majority"], result["models"]["linear"]
    assert majority["roc_auc"] == pytest.approx(0.5)
    assert majority["balanced_accuracy"] == pytest.approx(1 / len(classes))
    assert linear["roc_auc"] > 0.8 and linear["balanced_accuracy"] > majority["balanced_accuracy"]
    assert result["test_rows"] == 200 and result["test_hash"] == frame_hash(test)


def test_majority_predicts_the_training_frequencies() -> None:
    proba = majority_proba(np.array(["a", "b", "b", "b"]), ["a", "b", "c"], 2)
    assert proba.tolist() == [[0.25, 0.75, 0.0], [0.25, 0.75, 0.0]]


def test_train_rows_read_on_demand_give_the_same_baselines_and_are_freed() -> None:
    """The train stage hands baseline_metrics a reader of the train rows: the same
    figures as with the rows themselves, and the rows are freed once they are inputs."""
    import gc
    import weakref

    classes = ["no", "yes"]
    test = _frame(200, 1, classes)
    read: list[weakref.ref] = []

    def reader() -> pd.DataFrame:
        rows = _frame(400, 0, classes)
        read.append(weakref.ref(rows))
        return rows

    lazy = baseline_metrics(reader, test, _schema(classes))
    gc.collect()
    assert read and read[0]() is None
    assert lazy == baseline_metrics(_frame(400, 0, classes), test, _schema(classes))


def test_baselines_record_the_train_rows_they_were_fitted_on() -> None:
    classes = ["no", "yes"]
    result = baseline_metrics(_frame(300, 0, classes), _frame(100, 1, classes), _schema(classes))
    assert result["train_rows"] == 300 and result["test_rows"] == 100


def test_baseline_sample_reads_a_seeded_subset_in_file_order(tmp_path) -> None:
    """train.baseline_max_rows: the baselines' rows are a seeded sample of the train file
    (the same rows for the same seed, file order, dtypes as read_parquet); a file with no
    more rows, or no limit (None), is read whole."""
    path = tmp_path / "train.parquet"
    frame = _frame(1000, 0, ["no", "yes"]).assign(row=np.arange(1000))
    frame.to_parquet(path)
    sample = read_parquet_sample(path, 300, seed=5)
    assert len(sample) == 300 and sample["row"].is_monotonic_increasing
    assert sample.dtypes.equals(read_parquet(path).dtypes)
    expected = frame.set_index("row").loc[sample["row"]].reset_index()[list(frame.columns)]
    pd.testing.assert_frame_equal(sample.reset_index(drop=True), expected)
    assert read_parquet_sample(path, 300, seed=5)["row"].tolist() == sample["row"].tolist()
    assert read_parquet_sample(path, 300, seed=6)["row"].tolist() != sample["row"].tolist()
    for whole in (read_parquet_sample(path, 1000, 5), read_parquet_sample(path, None, 5)):
        pd.testing.assert_frame_equal(whole, read_parquet(path))


def test_baseline_max_rows_defaults_to_100k_and_accepts_null() -> None:
    assert TrainParams().baseline_max_rows == 100_000
    assert TrainParams.model_validate({"baseline_max_rows": None}).baseline_max_rows is None


@pytest.mark.parametrize("limit", [100, None])
def test_the_train_stage_fits_the_baselines_on_at_most_baseline_max_rows(
    limit: int | None, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import edit_params
    from tests.model.test_boosting_models import make_project

    from mlops_template import paths
    from mlops_template.commands.pipeline import train
    from mlops_template.files import read_json

    project = make_project(tmp_path / "project", "churn", "hist_gradient_boosting")
    edit_params(project, **{"train.baseline_max_rows": limit})
    monkeypatch.chdir(project)
    train()
    rows = len(read_parquet(paths.TRAIN_DATA))
    assert rows > 100
    assert read_json(paths.BASELINE)["train_rows"] == (rows if limit is None else limit)


def test_baselines_scored_in_chunks_give_the_same_figures(monkeypatch: pytest.MonkeyPatch) -> None:
    import mlops_template.train as t

    classes = ["a", "b", "c"]
    train, test = _frame(400, 0, classes), _frame(200, 1, classes)
    whole = baseline_metrics(train, test, _schema(classes))
    monkeypatch.setattr(t, "SCORE_CHUNK_ROWS", 7)
    assert baseline_metrics(train, test, _schema(classes)) == whole
