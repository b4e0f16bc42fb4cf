"""Pure drift functions: PSI, bins, p-value correction, schema checks, rendering."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset

from mlops_template.config import DataParams, MonitorParams
from mlops_template.monitor import (
    PREDICTED_CLASS,
    adjust_p_values,
    bin_counts,
    categorical_drift,
    check_drift,
    distribution_png,
    numeric_drift,
    out_of_schema,
    prediction_frame,
    psi,
    quantile_edges,
    render_markdown,
)
from mlops_template.validate import infer_schema

MIXED = DataParams(target="label", id_columns=["customer_id"])


def test_psi_is_zero_for_equal_proportions_and_grows_with_the_shift() -> None:
    # equal proportions: zero up to the half-count smoothing
    assert psi(np.array([10, 20, 30]), np.array([20, 40, 60])) == pytest.approx(0.0, abs=1e-3)
    assert psi(np.array([1000, 2000]), np.array([1000, 2000])) == 0.0
    small = psi(np.array([50, 50]), np.array([55, 45]))
    large = psi(np.array([50, 50]), np.array([90, 10]))
    assert 0 < small < 0.05 < 0.5 < large


def test_psi_of_an_empty_bin_is_large_but_finite() -> None:
    value = psi(np.array([100, 100, 0]), np.array([50, 50, 100]))
    assert np.isfinite(value) and value > 1


def test_quantile_edges_follow_the_reference_and_merge_ties() -> None:
    edges = quantile_edges(np.arange(100, dtype=float), 4)
    assert edges.tolist() == pytest.approx([24.75, 49.5, 74.25])
    # a feature with three distinct values cannot have ten distinct bins
    ties = quantile_edges(np.repeat([1.0, 2.0, 3.0], 50), 10)
    assert len(ties) <= 3
    assert quantile_edges(np.array([np.nan, np.nan]), 10).size == 0


def test_bin_counts_ignore_missing_values() -> None:
    counts = bin_counts(np.array([0.0, 1.0, 2.0, 3.0, np.nan]), np.array([1.5]))
    assert counts.tolist() == [2, 2]


def test_holm_and_bonferroni_adjustments() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4, 0.01*3, 0.03*2, 0.04*1 -> 0.02, 0.03, 0.06, max(0.06, 0.04)
    assert adjust_p_values(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values(p, "bonferroni") == pytest.approx([0.04, 0.16, 0.12, 0.02])
    assert adjust_p_values(p, "none") == pytest.approx(p)
    assert adjust_p_values([0.9, 0.8], "bonferroni") == [1.0, 1.0]
    assert adjust_p_values([], "holm") == []


def test_numeric_drift_sees_a_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(size=2000)
    same = numeric_drift("x", reference, rng.normal(size=1000), bins=10)
    moved = numeric_drift("x", reference, rng.normal(loc=1.0, size=1000), bins=10)
    assert same.test == "ks" and same.p_value > 0.001 and same.psi < 0.05
    assert moved.p_value < 1e-10 and moved.psi > 0.5
    assert len(moved.distribution.labels) == 10


def test_numeric_drift_sees_a_change_in_the_missing_share() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=1000)
    current = rng.normal(size=1000)
    current[:400] = np.nan  # same distribution of present values, 40 % now missing
    result = numeric_drift("x", reference, current, bins=10)
    assert result.distribution.labels[-1] == "(missing)"
    assert result.missing_current == pytest.approx(0.4)
    assert result.p_value < 1e-10 and result.psi > 0.2


def test_categorical_drift_counts_unseen_levels_in_their_own_bin() -> None:
    reference = pd.Series(["a"] * 50 + ["b"] * 50)
    current = pd.Series(["a"] * 40 + ["b"] * 40 + ["z"] * 20)
    result = categorical_drift("c", reference, current)
    assert result.distribution.labels == ["a", "b", "(unseen)"]
    assert result.distribution.current == pytest.approx([0.4, 0.4, 0.2])
    assert result.test == "chi2" and result.p_value < 0.001


def test_out_of_schema_numeric_rules() -> None:
    entry = {"name": "x", "kind": "numeric", "min": 0.0, "max": 10.0, "nullable": False}
    values = pd.Series(["1", "5", "11", "-1", "n/a", None, "3"], dtype=object)
    result = out_of_schema(values, entry)
    assert (result.out_of_range, result.unparseable, result.missing_required) == (2, 1, 1)
    assert result.count == 4 and result.fraction == pytest.approx(4 / 7)
    assert "n/a" in result.examples


def test_out_of_schema_missing_is_allowed_when_the_schema_saw_missing() -> None:
    entry = {"name": "c", "kind": "categorical", "levels": ["a", "b"], "nullable": True}
    result = out_of_schema(pd.Series(["a", None, "", "c", "c"], dtype=object), entry)
    assert (result.unseen, result.missing_required) == (2, 0)
    assert result.examples == ["c"]


def test_check_drift_names_a_missing_feature_column() -> None:
    reference = mixed_dataset(rows=300, seed=1)
    schema = infer_schema(reference, MIXED)
    with pytest.raises(KeyError, match="'color'"):
        check_drift(reference, reference.drop(columns=["color"]), schema, MonitorParams())


def test_prediction_frame_keeps_the_positive_class_for_binary_models() -> None:
    frame = prediction_frame(["b", "a"], np.array([[0.2, 0.8], [0.7, 0.3]]), ["a", "b"])
    assert list(frame.columns) == [PREDICTED_CLASS, "probability:b"]
    assert frame["probability:b"].tolist() == [0.8, 0.3]
    multi = prediction_frame(["x"], np.array([[0.1, 0.2, 0.7]]), ["x", "y", "z"])
    assert list(multi.columns) == [
        PREDICTED_CLASS,
        "probability:x",
        "probability:y",
        "probability:z",
    ]


def test_prediction_drift_joins_the_verdict() -> None:
    reference = mixed_dataset(rows=600, seed=1)
    current = mixed_dataset(rows=300, seed=2)
    schema = infer_schema(reference, MIXED)
    rng = np.random.default_rng(0)
    p_ref = rng.uniform(size=600)
    ref_pred = prediction_frame(
        np.where(p_ref > 0.5, "b", "a"), np.c_[1 - p_ref, p_ref], ["a", "b"]
    )
    p_cur = rng.uniform(0.6, 1.0, size=300)  # the model now says "b" to everyone
    cur_pred = prediction_frame(
        np.where(p_cur > 0.5, "b", "a"), np.c_[1 - p_cur, p_cur], ["a", "b"]
    )

    report = check_drift(reference, current, schema, MonitorParams(), ref_pred, cur_pred)

    assert report.status == "drift"
    assert not any(c.drifted for c in report.features)
    assert {c.name for c in report.predictions if c.drifted} == {PREDICTED_CLASS, "probability:b"}
    assert any(r.startswith("prediction ") for r in report.reasons)
    same = check_drift(reference, current, schema, MonitorParams(), ref_pred, ref_pred.head(300))
    assert same.status == "ok" and same.predictions


def test_report_serialises_and_renders() -> None:
    reference = mixed_dataset(rows=600, seed=1)
    current = mixed_dataset(rows=300, seed=2)
    current["x1"] = current["x1"] + 2
    report = check_drift(reference, current, infer_schema(reference, MIXED), MonitorParams())

    data = json.loads(json.dumps(report.to_dict()))
    assert data["status"] == "drift" and data["drift"] is True
    assert data["drifted_features"] == ["x1"]
    assert data["features"][0]["name"] == "x1"
    assert data["features"][0]["out_of_schema"]["fraction"] >= 0

    text = render_markdown(report, "batch.csv", "data/split/train.parquet", {"x1": "plots/x1.png"})
    assert text.startswith("# Drift check: DRIFT detected")
    assert text.index("`x1`") < text.index("`x2`")  # most drifted first
    assert "![x1](plots/x1.png)" in text
    assert "no predictions given" in text


def test_insufficient_data_is_said_in_the_markdown() -> None:
    reference = mixed_dataset(rows=600, seed=1)
    report = check_drift(
        reference, reference.head(10), infer_schema(reference, MIXED), MonitorParams()
    )
    text = render_markdown(report, "log.sqlite", "train.parquet")
    assert "not enough data" in text.lower() and "DRIFT" not in text
    assert report.to_dict()["status"] == "insufficient_data"


def test_distribution_png_is_a_png() -> None:
    rng = np.random.default_rng(0)
    column = numeric_drift("x", rng.normal(size=500), rng.normal(size=300), bins=10)
    assert distribution_png(column).startswith(b"\x89PNG")
    many = categorical_drift(
        "c", pd.Series([str(i % 30) for i in range(600)]), pd.Series(["1"] * 50)
    )
    assert distribution_png(many).startswith(b"\x89PNG")


# --- labelled feedback -----------------------------------------------------------------

from mlops_template.data import DataError, append_feedback  # noqa: E402
from mlops_template.monitor import prepare_feedback  # noqa: E402


def _mixed_schema() -> dict:
    return infer_schema(mixed_dataset(rows=300, seed=1), MIXED)


def test_prepare_feedback_keeps_the_contract_columns_with_schema_dtypes() -> None:
    schema = _mixed_schema()
    batch = mixed_dataset(rows=50, seed=2)
    batch["note"] = "from the call centre"
    batch["x1"] = batch["x1"].astype(str)  # CSV-ish text numbers still parse
    batch = pd.concat([batch, batch.head(5)])  # duplicates inside the batch
    frame, extra = prepare_feedback(batch, schema, "batch.csv")
    assert extra == ["note"]
    assert len(frame) == 50
    assert set(frame.columns) == {"x1", "x2", "color", "size", "customer_id", "label"}
    assert frame["x1"].dtype == "float64" and frame["customer_id"].tolist() == list(range(50))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b.drop(columns=["label"]), "no target column 'label'"),
        (
            lambda b: b.assign(label=b["label"].where(b.index > 2)),
            "3 row(s) have no value in the target column 'label'",
        ),
        (
            lambda b: b.assign(label="enormous"),
            "['enormous'] that are not among the model's classes",
        ),
        (lambda b: b.drop(columns=["size"]), "missing feature column(s) ['size']"),
        (
            lambda b: b.assign(x2=["n/a", *b["x2"].tolist()[1:]]),
            "column 'x2' is numeric in the schema but has 1 value(s) that are not numbers, e.g. ['n/a']",
        ),
    ],
)
def test_prepare_feedback_errors_name_the_file_and_the_column(change, message) -> None:  # type: ignore[no-untyped-def]
    batch = change(mixed_dataset(rows=20, seed=3))
    with pytest.raises(DataError) as error:
        prepare_feedback(batch, _mixed_schema(), "labelled.csv")
    assert str(error.value).startswith("labelled.csv: ")
    assert message in str(error.value)


def test_append_feedback_adds_new_rows_once_and_keeps_the_source_dtypes() -> None:
    source = pd.DataFrame(
        {"id": [1, 2, 3], "x": [1.5, 2.5, 3.5], "n": [1, 2, 3], "y": ["a", "b", "a"]}
    )
    batch = pd.DataFrame({"x": [9.0, 1.5, 9.0], "n": [7.0, 1.0, 7.0], "y": ["b", "a", "b"]})
    # row 2 equals source row 1 (without its id: not a duplicate); row 3 repeats row 1
    out = append_feedback(source, [("f1.parquet", batch)], optional=["id"])
    assert len(out) == 3 + 2
    assert str(out["n"].dtype) == "int64" and out["n"].tolist() == [1, 2, 3, 7, 1]
    assert out["id"].isna().tolist() == [False, False, False, True, True]  # optional: missing
    assert out["x"].tolist() == [1.5, 2.5, 3.5, 9.0, 1.5]
    # the same batch twice, or a batch already appended: nothing more
    again = append_feedback(source, [("f1.parquet", batch), ("f2.parquet", batch)], optional=["id"])
    assert len(again) == 5
    full = source.iloc[[0]].copy()
    assert len(append_feedback(source, [("f3.csv", full)])) == 3  # identical to a source row
    # the source's own duplicates are validation's business, not dropped here
    doubled = pd.concat([source, source.head(1)], ignore_index=True)
    assert len(append_feedback(doubled, [("f4.csv", batch.head(1))], optional=["id"])) == 5


def test_append_feedback_keeps_integer_columns_integer() -> None:
    source = pd.DataFrame({"n": [1, 2], "y": ["a", "b"]})
    out = append_feedback(source, [("f.csv", pd.DataFrame({"n": [3.0], "y": ["a"]}))])
    assert str(out["n"].dtype) == "int64" and out["n"].tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("batch", "message"),
    [
        (pd.DataFrame({"x": [1.0]}), "lacks the column(s) ['y']"),
        (
            pd.DataFrame({"x": [1.0], "y": ["a"], "z": [0]}),
            "column(s) ['z'] the data does not have",
        ),
        (
            pd.DataFrame({"x": ["high"], "y": ["a"]}),
            "column 'x' does not fit the data's type float64",
        ),
    ],
)
def test_append_feedback_errors_name_the_file_and_the_column(
    batch: pd.DataFrame, message: str
) -> None:
    source = pd.DataFrame({"x": [1.0, 2.0], "y": ["a", "b"]})
    with pytest.raises(DataError, match=r"feedback file 'data/external/feedback/b\.csv'") as error:
        append_feedback(source, [("data/external/feedback/b.csv", batch)])
    assert message in str(error.value)
