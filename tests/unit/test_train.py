"""Training, ONNX conversion and parity, reproducible skops bytes, safe loading."""

from __future__ import annotations

import fractions
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from tests.conftest import mixed_dataset

from mlops_template.config import DataParams, SplitParams, TrainParams
from mlops_template.data import stratified_split
from mlops_template.features import feature_frame, target_labels
from mlops_template.train import (
    FIXED_ZIP_TIME,
    ModelError,
    build_estimator,
    build_pipeline,
    check_parity,
    fit_in_steps,
    fit_pipeline,
    load_skops,
    missing_value_probes,
    model_numeric_dtype,
    numeric_dtype,
    onnx_classes,
    onnx_predict,
    onnx_session,
    sha256,
    skops_bytes,
    to_onnx,
    train_info,
)
from mlops_template.validate import infer_schema

MODELS = ["logistic_regression", "random_forest", "hist_gradient_boosting"]
# small models: these tests are about plumbing, not quality
FAST = {
    "random_forest": {"n_estimators": 20},
    "hist_gradient_boosting": {"max_iter": 20},
}


def fast_params(model: str, seed: int = 42) -> TrainParams:
    return TrainParams.model_validate(
        {"model": model, "seed": seed} | ({model: FAST[model]} if model in FAST else {})
    )


@pytest.fixture(scope="module")
def mixed() -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    frame = mixed_dataset(rows=400)
    data = DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"])
    train, test = stratified_split(frame, "label", SplitParams())
    return train, test, infer_schema(frame, data)


@pytest.fixture(scope="module")
def binary(breast_cancer: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    train, test = stratified_split(breast_cancer, "target", SplitParams())
    return train, test, infer_schema(breast_cancer, DataParams())


@pytest.mark.parametrize("model", MODELS)
def test_estimator_gets_its_hyperparameters_and_seed(model: str) -> None:
    estimator = build_estimator(fast_params(model, seed=7))
    assert estimator.random_state == 7
    for key, value in FAST.get(model, {}).items():
        assert estimator.get_params()[key] == value


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("task", ["mixed", "binary"])
def test_onnx_matches_sklearn(model: str, task: str, request: pytest.FixtureRequest) -> None:
    train, test, schema = request.getfixturevalue(task)
    pipeline = fit_pipeline(train, schema, fast_params(model))
    onnx_model = to_onnx(pipeline, schema)
    parity = check_parity(pipeline, onnx_model, test, schema, tolerance=1e-4)
    assert parity.passed, parity
    assert parity.rows == len(test) and parity.label_mismatches == 0
    session = onnx_session(onnx_model)
    assert onnx_classes(session) == schema["classes"] == [str(c) for c in pipeline.classes_]
    labels, proba = onnx_predict(session, feature_frame(test, schema), schema)
    assert proba.shape == (len(test), len(schema["classes"]))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert set(labels) <= set(schema["classes"])


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("task", ["mixed", "binary"])
def test_onnx_imputes_a_missing_value_in_every_feature_like_sklearn(
    model: str, task: str, request: pytest.FixtureRequest
) -> None:
    """Serving accepts a null in any feature: the ONNX graph imputes it as sklearn does,
    also in the features that had no missing value in training (the default data has
    none; in the mixed data x1 and size have none)."""
    train, test, schema = request.getfixturevalue(task)
    pipeline = fit_pipeline(train, schema, fast_params(model))
    probes = missing_value_probes(test, schema, rows=10)
    names = [f["name"] for f in schema["features"]]
    assert len(probes) == 10 * (len(names) + 1)
    features = feature_frame(probes, schema)
    for i, name in enumerate(names):  # block i: feature i missing, the others as given
        block = features.iloc[10 * i : 10 * (i + 1)]
        missing = block[name].isna() | (block[name] == "")
        assert missing.all() and block.drop(columns=name).notna().all().all()
    parity = check_parity(pipeline, to_onnx(pipeline, schema), probes, schema, tolerance=1e-4)
    assert parity.passed and parity.rows == len(probes), parity
    # the nulls were imputed (finite, and not all rows alike), not passed through
    proba = pipeline.predict_proba(features)
    assert np.isfinite(proba).all() and len(np.unique(proba.round(6), axis=0)) > 1


def test_parity_fails_when_the_tolerance_is_beyond_float32(binary: tuple) -> None:
    train, test, schema = binary
    pipeline = fit_pipeline(train, schema, fast_params("logistic_regression"))
    parity = check_parity(pipeline, to_onnx(pipeline, schema), test, schema, tolerance=1e-12)
    assert not parity.passed and parity.max_probability_difference > 1e-12


def test_onnx_file_is_canonical(mixed: tuple) -> None:
    train, _, schema = mixed
    model = onnx.load_from_string(
        to_onnx(fit_pipeline(train, schema, fast_params("logistic_regression")), schema)
    )
    assert model.graph.name == "model"
    domains = [o.domain for o in model.opset_import]
    assert domains == sorted(domains)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["target"] == "label" and meta["task"] == "multiclass"


@pytest.mark.parametrize("model", MODELS)
def test_same_seed_same_bytes_in_one_process(model: str, mixed: tuple) -> None:
    train, _, schema = mixed
    first = fit_pipeline(train, schema, fast_params(model))
    second = fit_pipeline(train, schema, fast_params(model))
    assert skops_bytes(first) == skops_bytes(second)
    assert to_onnx(first, schema) == to_onnx(second, schema)


def test_skops_bytes_have_no_memory_addresses_or_clock(mixed: tuple) -> None:
    train, _, schema = mixed
    data = skops_bytes(fit_pipeline(train, schema, fast_params("random_forest")))
    archive = zipfile.ZipFile(io.BytesIO(data))
    assert all(info.date_time == FIXED_ZIP_TIME for info in archive.infolist())
    names = archive.namelist()
    assert names[0] == "schema.json" and len(names) > 1
    numbers = [int(n.removesuffix(".npy")) for n in names[1:]]
    assert numbers == sorted(numbers) and max(numbers) < 100_000  # not id() addresses
    text = archive.read("schema.json").decode()
    ids = [int(i) for i in re.findall(r'"__id__": (\d+)', text)]
    assert ids and max(ids) < 100_000


def test_skops_round_trip_predicts_the_same(mixed: tuple, tmp_path: Path) -> None:
    train, test, schema = mixed
    pipeline = fit_pipeline(train, schema, fast_params("hist_gradient_boosting"))
    path = tmp_path / "model.skops"
    path.write_bytes(skops_bytes(pipeline))
    loaded = load_skops(path)
    features = feature_frame(test, schema)
    np.testing.assert_array_equal(loaded.predict_proba(features), pipeline.predict_proba(features))


def test_load_skops_refuses_types_outside_the_allow_list(tmp_path: Path) -> None:
    import skops.io as sio

    path = tmp_path / "evil.skops"
    path.write_bytes(sio.dumps({"x": fractions.Fraction(1, 3)}))
    with pytest.raises(ModelError, match=r"fractions.Fraction"):
        load_skops(path)


def test_train_info_records_hashes_and_parity(binary: tuple) -> None:
    train, test, schema = binary
    params = fast_params("logistic_regression")
    pipeline = fit_pipeline(train, schema, params)
    onnx_model, skops_model = to_onnx(pipeline, schema), skops_bytes(pipeline)
    parity = check_parity(pipeline, onnx_model, test, schema, 1e-3)
    info = train_info(params, parity, skops_model, onnx_model, len(train))
    assert "parity_with_missing_values" not in info
    probes = missing_value_probes(test, schema)
    missing = check_parity(pipeline, onnx_model, probes, schema, 1e-3)
    with_missing = train_info(params, parity, skops_model, onnx_model, len(train), missing)
    assert with_missing["parity_with_missing_values"]["rows"] == len(probes) == 20 * 31
    assert with_missing["parity_with_missing_values"]["label_mismatches"] == 0
    assert info["sha256"] == {"model.skops": sha256(skops_model), "model.onnx": sha256(onnx_model)}
    assert info["model"] == "logistic_regression" and info["train_rows"] == len(train)
    assert info["hyperparameters"]["C"] == 1.0
    assert info["parity"]["label_mismatches"] == 0


@pytest.mark.parametrize("model", MODELS)
def test_fit_in_steps_is_pipeline_fit_and_drops_its_input(model: str, mixed: tuple) -> None:
    """The train stage's step-by-step fit makes the same model, byte for byte, and keeps
    no reference to the input table it was handed."""
    import gc
    import weakref

    train, _, schema = mixed
    labels = target_labels(train, schema)
    whole = build_pipeline(schema, fast_params(model)).fit(feature_frame(train, schema), labels)
    made: list[weakref.ref] = []

    def features() -> pd.DataFrame:
        table = feature_frame(train, schema)
        made.append(weakref.ref(table))
        return table

    released: list[int] = []

    def release() -> None:
        # the table `features` made is no longer referenced when release runs
        gc.collect()
        released.append(0 if made[0]() is None else 1)

    stepwise = fit_in_steps(
        build_pipeline(schema, fast_params(model)), features, labels, release=release
    )
    gc.collect()
    assert made and made[0]() is None
    # after the table is made (still the next step's input), then after each step
    transformers = [s for _, s in stepwise.steps[:-1] if s not in (None, "passthrough")]
    assert released == [1] + [0] * len(transformers)
    assert skops_bytes(stepwise) == skops_bytes(whole)
    assert to_onnx(stepwise, schema) == to_onnx(whole, schema)


@pytest.mark.parametrize("model", ["random_forest", "hist_gradient_boosting"])
def test_tree_models_take_category_codes_and_onnx_scores_unseen_values_alike(
    model: str, mixed: tuple
) -> None:
    """Tree models get one column of codes per categorical (user_model.ordinal_categories),
    linear ones one-hot columns; ONNX scores a value unseen in training (serving accepts
    it, serve.unknown_categories) and a missing one as sklearn does."""
    train, test, schema = mixed
    pipeline = fit_pipeline(train, schema, fast_params(model))
    inputs = pipeline.named_steps["preprocess"].get_feature_names_out()
    assert len(inputs) == len(schema["features"])
    linear = fit_pipeline(train, schema, fast_params("logistic_regression"))
    assert len(linear.named_steps["preprocess"].get_feature_names_out()) > len(inputs)
    rows = test.head(40).copy()
    rows.loc[rows.index[:20], "color"] = "never-seen"
    rows.loc[rows.index[20:30], "size"] = None
    parity = check_parity(pipeline, to_onnx(pipeline, schema), rows, schema, tolerance=1e-4)
    assert parity.passed and parity.rows == 40, parity


@pytest.mark.parametrize("model", ["hist_gradient_boosting", "lightgbm", "xgboost"])
def test_tree_models_train_on_float32_values_so_onnx_agrees_next_to_a_threshold(
    model: str, tmp_path: Path
) -> None:
    """x = 1 (label no) and x = 1 + 2**-30 (yes) differ in float64 and are the same float32:
    trained on float64, LightGBM and HGB learn a threshold between them that the ONNX
    model (float32 inputs and thresholds) cannot tell apart: every "yes" row flipped
    (issue 11: LightGBM failed the parity check at 1e6 synthetic rows). Trained on the
    float32 values (user_model.float32_input), sklearn and ONNX agree."""
    rng = np.random.default_rng(0)
    rows = 200
    frame = pd.DataFrame(
        {
            "x": np.r_[np.full(rows, 1.0), np.full(rows, 1.0 + 2.0**-30), rng.uniform(2, 3, rows)],
            "c": rng.choice(["u", "v"], 3 * rows),
            "label": ["no"] * rows + ["yes"] * rows + list(rng.choice(["no", "yes"], rows)),
        }
    )
    schema = {
        "target": "label",
        "task": "classification",
        "classes": ["no", "yes"],
        "features": [{"name": "x", "kind": "numeric"}, {"name": "c", "kind": "categorical"}],
    }
    params = TrainParams.model_validate({"model": model, "seed": 0})
    assert numeric_dtype(params) == np.float32
    pipeline = fit_pipeline(frame, schema, params)
    inputs = pipeline.named_steps["preprocess"].transform(feature_frame(frame, schema, np.float32))
    assert inputs.dtype == np.float32  # ordinal codes too
    # the parity check feeds sklearn the dtype the pipeline records, also after skops
    (tmp_path / "model.skops").write_bytes(skops_bytes(pipeline))
    loaded = load_skops(tmp_path / "model.skops")
    assert model_numeric_dtype(loaded) == np.float32
    parity = check_parity(loaded, to_onnx(pipeline, schema), frame, schema, 1e-3)
    assert parity.passed and parity.rows == 3 * rows, parity


def test_linear_and_forest_models_keep_float64_input() -> None:
    for model in ("logistic_regression", "random_forest"):
        params = fast_params(model)
        assert numeric_dtype(params) == np.float64
        assert model_numeric_dtype(build_pipeline({"features": []}, params)) == np.float64


def test_lightgbm_thresholds_round_down_to_float32() -> None:
    """LightGBM compares float32 training values with double thresholds (midpoints); the
    ONNX graph holds float32 ones. Rounded down, x <= t and x <= float32_threshold(t) agree
    for every float32 x, also for a threshold near the middle of two float32 values (sklearn:
    wine's 13.71 and 13.73: nearest rounding gave float32(13.72), flipping a row of 13.72)."""
    from mlops_template.train import float32_threshold

    midpoint = 13.719999790191652  # LightGBM's threshold between them (its model dump)
    assert float(np.float32(midpoint)) == float(np.float32(13.72)) > midpoint  # the bug
    x = np.float32(13.72)
    assert (float(x) <= midpoint) == (x <= np.float32(float32_threshold(midpoint)))
    rng = np.random.default_rng(0)
    values = rng.normal(scale=100, size=2000).astype(np.float32)
    pairs = np.sort(rng.choice(values, (500, 2)), axis=1).astype(np.float64)
    for t in [*pairs.mean(axis=1), *values.astype(np.float64), 0.1, -0.1]:
        down = np.float32(float32_threshold(t))
        assert np.array_equal(values.astype(np.float64) <= t, values <= down), t


def test_parity_scored_in_chunks_gives_the_whole_frames_figures(
    mixed: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train.SCORE_CHUNK_ROWS: the parity check scores the rows in parts (peak memory);
    counts and maxima over the parts are those of one pass."""
    import mlops_template.train as t

    train, test, schema = mixed
    pipeline = fit_pipeline(train, schema, fast_params("hist_gradient_boosting"))
    onnx_model = to_onnx(pipeline, schema)
    rows = pd.concat([test, missing_value_probes(test, schema)])
    whole = check_parity(pipeline, onnx_model, rows, schema, 1e-3)
    monkeypatch.setattr(t, "SCORE_CHUNK_ROWS", 7)
    assert check_parity(pipeline, onnx_model, rows, schema, 1e-3) == whole
    strict = check_parity(pipeline, onnx_model, rows, schema, 1e-9)
    monkeypatch.setattr(t, "SCORE_CHUNK_ROWS", 50_000)
    assert check_parity(pipeline, onnx_model, rows, schema, 1e-9) == strict
    assert whole.rows == len(rows) and strict.max_probability_difference > 0
    assert check_parity(pipeline, onnx_model, rows.iloc[:0], schema, 1e-3).rows == 0
