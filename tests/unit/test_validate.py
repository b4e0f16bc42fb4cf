"""The data contract as pure functions: each rule on a crafted frame, the schema, reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset

from mlops_template.config import DataParams, ValidateParams
from mlops_template.validate import (
    ID_NAME,
    Check,
    ValidationResult,
    check_data,
    failure_message,
    infer_schema,
    render_validation_markdown,
    single_column_score,
)

DATA = DataParams(source="data/external/m.csv", target="label", id_columns=["customer_id"])
RULES = ValidateParams()


def failed(frame: pd.DataFrame, data: DataParams = DATA, rules: ValidateParams = RULES) -> set:
    """(rule, column) of every failed check."""
    return {(c.rule, c.column) for c in check_data(frame, data, rules).failures}


@pytest.fixture
def good() -> pd.DataFrame:
    return mixed_dataset(rows=300)


def test_good_data_passes_every_rule(good: pd.DataFrame) -> None:
    result = check_data(good, DATA, RULES)
    assert result.passed, result.failures
    rules = {c.rule for c in result.checks}
    assert {"not_empty", "min_rows", "target_present", "min_classes", "missing_fraction"} <= rules
    assert {"duplicate_fraction", "leakage"} <= rules


def test_default_dataset_passes(breast_cancer: pd.DataFrame) -> None:
    assert check_data(breast_cancer, DataParams(), RULES).passed


def test_empty_table() -> None:
    assert failed(pd.DataFrame()) == {("not_empty", None)}
    assert failed(pd.DataFrame({"label": [], "x1": []})) == {("not_empty", None)}


def test_too_few_rows(good: pd.DataFrame) -> None:
    assert ("min_rows", None) in failed(good.head(10))


def test_missing_target_column_suggests_a_close_name(good: pd.DataFrame) -> None:
    result = check_data(good.rename(columns={"label": "Label"}), DATA, RULES)
    [failure] = result.failures
    assert (failure.rule, failure.column) == ("target_present", "label")
    assert "did you mean 'Label'" in failure.detail


def test_single_class(good: pd.DataFrame) -> None:
    frame = good.assign(label="low")
    assert ("min_classes", "label") in failed(frame)


def test_missing_target_values(good: pd.DataFrame) -> None:
    frame = good.copy()
    frame.loc[:4, "label"] = None
    assert ("target_complete", "label") in failed(frame)


def test_class_with_one_row_cannot_be_split(good: pd.DataFrame) -> None:
    frame = good.copy()
    frame.loc[0, "label"] = "unique"
    assert ("min_class_rows", "label") in failed(frame)


def test_all_null_column(good: pd.DataFrame) -> None:
    assert failed(good.assign(empty=np.nan)) == {("all_null", "empty")}


def test_text_in_a_numeric_column(good: pd.DataFrame) -> None:
    frame = good.astype({"x1": object})
    frame.loc[[3, 7], "x1"] = "n/a?"
    result = check_data(frame, DATA, RULES)
    [failure] = result.failures
    assert (failure.rule, failure.column) == ("numeric_parse", "x1")
    assert "n/a?" in failure.detail


def test_mostly_text_column_is_categorical_not_a_parse_error(good: pd.DataFrame) -> None:
    frame = good.assign(code=np.where(np.arange(len(good)) % 2, "A1", "7"))
    assert check_data(frame, DATA, RULES).passed


def test_infinite_values(good: pd.DataFrame) -> None:
    frame = good.copy()
    frame.loc[5, "x1"] = np.inf
    assert failed(frame) == {("finite", "x1")}


def test_too_many_categorical_levels(good: pd.DataFrame) -> None:
    frame = good.assign(free_text=[f"note {i}" for i in range(len(good))])
    assert ("categorical_levels", "free_text") in failed(frame)
    # listing it as dropped makes the data valid again
    dropped = DataParams(**(DATA.model_dump() | {"drop_columns": ["free_text"]}))
    assert check_data(frame, dropped, RULES).passed


def test_missing_fraction(good: pd.DataFrame) -> None:
    frame = good.copy()
    frame.loc[frame.index[: int(len(frame) * 0.4)], "x1"] = np.nan
    assert failed(frame) == {("missing_fraction", "x1")}
    lenient = ValidateParams(max_missing_fraction=0.5)
    assert check_data(frame, DATA, lenient).passed


def test_copies_ignore_id_columns_and_whole_table_duplicates_only_warn(good: pd.DataFrame) -> None:
    copies = good.head(40).assign(customer_id=lambda f: f["customer_id"] + 10_000)
    frame = pd.concat([good, copies], ignore_index=True)
    result = check_data(frame, DATA, RULES)
    assert failed(frame) == {("test_copies", None)}
    assert [(c.rule, c.column) for c in result.warnings] == [("duplicate_fraction", None)]
    assert result.to_dict()["warnings"][0]["rule"] == "duplicate_fraction"
    markdown = render_validation_markdown(result, "data/external/m.csv")
    assert "## Warnings (do not fail validation)" in markdown
    assert "- **duplicate_fraction** (dataset): 11.8% duplicate rows" in markdown
    # a generous threshold lets the copies pass; the duplicates stay a warning
    lenient = ValidateParams(max_test_copy_fraction=0.5)
    assert check_data(frame, DATA, lenient).passed


@pytest.mark.parametrize(
    ("name", "id_like"),
    [
        ("customer_id", True),
        ("id", True),
        ("ID", True),
        ("order-id", True),
        ("id_2", True),
        ("PassengerId", True),
        ("userID", True),
        ("paid", False),
        ("valid", False),
        ("Humidity", False),
        ("idle_minutes", False),
    ],
)
def test_id_names(name: str, id_like: bool) -> None:
    assert bool(ID_NAME.search(name)) is id_like


def test_leakage_copy_of_the_target(good: pd.DataFrame) -> None:
    assert failed(good.assign(leak=good["label"])) == {("leakage", "leak")}


def test_leakage_numeric_code_of_the_target(good: pd.DataFrame) -> None:
    code = good["label"].map({"low": 0, "mid": 1, "high": 2}).astype(float)
    noisy = code + np.random.default_rng(0).normal(scale=0.01, size=len(good))
    assert failed(good.assign(label_code=noisy)) == {("leakage", "label_code")}


def test_strong_but_honest_feature_is_not_leakage(breast_cancer: pd.DataFrame) -> None:
    # the best single feature of the default data is good, not perfect
    scores = [
        single_column_score(breast_cancer[c], breast_cancer["target"])
        for c in breast_cancer.columns
        if c != "target"
    ]
    assert 0.85 < max(scores) < RULES.leakage_max_score


def test_id_like_text_column_is_not_flagged_as_leakage(good: pd.DataFrame) -> None:
    frame = good.assign(code=[f"row-{i}" for i in range(len(good))])
    assert ("leakage", "code") not in failed(
        frame, rules=ValidateParams(max_categorical_levels=10_000)
    )


def test_listed_id_column_must_exist(good: pd.DataFrame) -> None:
    data = DataParams(**(DATA.model_dump() | {"id_columns": ["customer_id", "nope"]}))
    assert ("listed_column_present", "nope") in failed(good, data)


def test_single_column_score_ranges() -> None:
    target = pd.Series(["a", "b"] * 50)
    assert single_column_score(target.map({"a": 1.0, "b": 2.0}), target) == 1.0
    noise = pd.Series(np.random.default_rng(1).normal(size=100))
    assert single_column_score(noise, target) < 0.8
    assert single_column_score(pd.Series([np.nan] * 100), target) == 0.0


def test_schema_describes_columns_classes_and_task(good: pd.DataFrame) -> None:
    schema = infer_schema(good, DATA)
    features = {f["name"]: f for f in schema["features"]}
    assert list(features) == ["x1", "x2", "color", "size"]  # id and target left out
    assert features["x1"]["kind"] == "numeric"
    assert features["x1"]["min"] == pytest.approx(good["x1"].min())
    assert features["x2"]["nullable"] and features["x2"]["missing_fraction"] > 0
    assert features["color"]["kind"] == "categorical"
    assert features["color"]["levels"] == ["blue", "green", "red"]
    assert schema["classes"] == ["high", "low", "mid"]
    assert schema["task"] == "multiclass"
    assert sum(schema["class_counts"].values()) == len(good)
    assert schema["id_columns"] == ["customer_id"]


def test_schema_of_the_default_data_is_binary(breast_cancer: pd.DataFrame) -> None:
    schema = infer_schema(breast_cancer, DataParams())
    assert schema["task"] == "binary"
    assert schema["classes"] == ["benign", "malignant"]
    assert {f["kind"] for f in schema["features"]} == {"numeric"}
    assert len(schema["features"]) == 30


def test_schema_hash_changes_with_the_data(good: pd.DataFrame) -> None:
    changed = good.copy()
    changed.loc[0, "x1"] = 99.0
    assert infer_schema(good, DATA)["dataset_hash"] != infer_schema(changed, DATA)["dataset_hash"]


def test_report_and_message_name_the_column_and_rule(good: pd.DataFrame) -> None:
    result = check_data(good.assign(empty=np.nan), DATA, RULES)
    markdown = render_validation_markdown(result, "data/external/m.csv")
    assert markdown.startswith("# Data validation: FAILED")
    assert "**all_null** (empty)" in markdown
    assert (
        failure_message(result.failures[0])
        == "column 'empty' fails rule all_null: every value is missing"
    )
    as_dict = result.to_dict()
    assert as_dict["passed"] is False
    assert as_dict["failures"] == [
        {"rule": "all_null", "passed": False, "detail": "every value is missing", "column": "empty"}
    ]


def test_result_of_only_passing_checks() -> None:
    result = ValidationResult(checks=[Check("not_empty", True, "ok")])
    assert result.passed and result.failures == []
    assert "PASSED" in render_validation_markdown(result, "x")
    assert (
        failure_message(Check("min_rows", False, "3 rows")) == "dataset fails rule min_rows: 3 rows"
    )
