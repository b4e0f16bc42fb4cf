"""The validation rules that real files trip over, each on a crafted CSV or Parquet file
read through the real loader (`data.read_table`), then `check_data` / `infer_schema`:
train/test copies, id-like integers, date columns, missing-value texts, regression
targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset, mixed_regression_dataset

from mlops_template.config import DataParams, SplitParams, ValidateParams
from mlops_template.data import held_out_rows, read_table, stratified_split
from mlops_template.validate import (
    ValidationResult,
    check_data,
    count_test_copies,
    feature_columns,
    infer_schema,
    infer_task,
)

DATA = DataParams(source="data/external/input.csv", target="label", id_columns=["customer_id"])
RULES = ValidateParams()
SPLIT = SplitParams()


def load(tmp_path: Path, frame: pd.DataFrame, name: str = "input.csv") -> pd.DataFrame:
    """Write the crafted frame as a file and read it back the way `ingest` does."""
    path = tmp_path / name
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return read_table(path)


def validate(frame: pd.DataFrame, data: DataParams = DATA) -> ValidationResult:
    return check_data(frame, data, RULES, SPLIT)


def failed(result: ValidationResult) -> set[tuple[str, str | None]]:
    return {(c.rule, c.column) for c in result.failures}


def warned(result: ValidationResult) -> set[tuple[str, str | None]]:
    return {(c.rule, c.column) for c in result.warnings}


def detail(result: ValidationResult, rule: str) -> str:
    [check] = [c for c in [*result.checks, *result.warnings] if c.rule == rule]
    return check.detail


# ---------------------------------------------------------------- train/test copies
def test_test_rows_copying_training_rows_fail(tmp_path: Path) -> None:
    good = mixed_dataset(rows=300, seed=3)
    # 40 records entered twice under new ids: continuous x1 makes each copy unmistakable
    copies = good.head(40).assign(customer_id=lambda f: f["customer_id"] + 10_000)
    frame = load(tmp_path, pd.concat([good, copies], ignore_index=True))

    result = validate(frame)

    assert failed(result) == {("test_copies", None)}
    # the measure is the split the `split` stage makes: count the copies there directly
    train, test = stratified_split(frame, "label", SPLIT)
    columns = feature_columns(frame, DATA)
    in_train = set(map(tuple, train[columns].astype(str).to_numpy()))
    expected = sum(tuple(row) in in_train for row in test[columns].astype(str).to_numpy())
    assert expected > 0.01 * len(test)
    assert f"{expected} of {len(test)} test rows" in detail(result, "test_copies")
    # the whole-table duplicate share (12 %) is only a warning now
    assert ("duplicate_fraction", None) in warned(result)
    assert validate(load(tmp_path, good, "good.csv")).passed


def test_identical_rows_of_low_dimensional_data_pass_with_a_warning(tmp_path: Path) -> None:
    # Titanic-like: three categorical columns, so most rows repeat another row by nature
    rng = np.random.default_rng(0)
    rows = 2000
    frame = pd.DataFrame(
        {
            "klass": rng.choice(["1st", "2nd", "3rd", "crew"], rows),
            "sex": rng.choice(["male", "female"], rows),
            "age": rng.choice(["child", "adult"], rows, p=[0.1, 0.9]),
        }
    )
    survival = np.where(frame["sex"] == "female", 0.7, 0.2)
    frame["label"] = np.where(rng.uniform(size=rows) < survival, "yes", "no")
    frame = load(tmp_path, frame)

    result = validate(frame, DataParams(source="data/external/input.csv", target="label"))

    assert result.passed, result.failures
    assert ("duplicate_fraction", None) in warned(result)
    test_rows, beyond_chance, common = count_test_copies(
        frame, ["klass", "sex", "age"], "label", SPLIT
    )
    assert beyond_chance == 0
    assert common > 0.9 * test_rows  # nearly every test row equals some training row


def test_a_copy_counts_only_with_a_value_of_its_own_in_a_fine_grained_column() -> None:
    frame = pd.DataFrame(
        {
            "x": [0.123, 0.123] + [np.nan] * 20 + [1.1 * i for i in range(40)],
            "c": ["a", "a"] + ["z"] * 20 + ["b"] * 40,
            "label": ["p", "p"] + ["q"] * 20 + ["p", "q"] * 20,
        }
    )
    # rows 0/1: a copy pair holding x = 0.123, which no other row has (x is fine-grained);
    # rows 2..21: identical too, but their shared x is missing: never evidence of a copy
    seeds = [
        s for s in range(50) if held_out_rows(frame, "label", SplitParams(seed=s))[:2].sum() == 1
    ]
    split = SplitParams(seed=seeds[0])
    test_rows, beyond_chance, common = count_test_copies(frame, ["x", "c"], "label", split)
    is_test = held_out_rows(frame, "label", split)
    assert test_rows == is_test.sum()
    assert beyond_chance == 1
    assert common == is_test[2:22].sum() > 0
    # the same rows with x coarse (3 values for 62 rows): nothing is beyond chance
    coarse = frame.assign(x=frame["x"].fillna(2.0).clip(upper=1.0).round(0))
    assert count_test_copies(coarse, ["x", "c"], "label", split)[1] == 0


# ---------------------------------------------------------------- id-like integers
def test_id_like_integer_columns_are_flagged(tmp_path: Path) -> None:
    good = mixed_dataset(rows=300, seed=3)
    rng = np.random.default_rng(5)
    crafted = good.assign(
        row_number=np.arange(1, len(good) + 1),  # contiguous 1..n
        PassengerId=rng.permutation(len(good)) * 7 + 1000,  # shuffled, gaps, named like an id
        sequence=np.cumsum(rng.integers(1, 50, len(good))),  # sorted in row order
        income=rng.choice(10**6, len(good), replace=False),  # distinct, but a measurement
    )
    frame = load(tmp_path, crafted)

    result = validate(frame)

    assert result.passed, result.failures
    assert {c.column for c in result.warnings if c.rule == "id_like"} == {
        "row_number",
        "PassengerId",
        "sequence",
    }
    for check in result.warnings:
        assert "data.id_columns" in check.detail
    assert "contiguous" in next(c for c in result.warnings if c.column == "row_number").detail
    # listed as an id column: no longer a feature, no longer flagged
    listed = DataParams(**(DATA.model_dump() | {"id_columns": ["customer_id", "row_number"]}))
    assert ("id_like", "row_number") not in warned(validate(frame, listed))


# ---------------------------------------------------------------- dates
def test_date_columns_are_recognised_and_kept_out_of_the_features(tmp_path: Path) -> None:
    good = mixed_dataset(rows=300, seed=3)
    days = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(good)) * 3, unit="D")
    crafted = good.assign(
        signup=days.strftime("%Y-%m-%d"),  # text: 300 distinct values > 200 levels
        last_seen=days.strftime("%d/%m/%Y %H:%M"),
    )
    crafted.loc[[5, 9], "signup"] = "N/A"
    csv = load(tmp_path, crafted)
    parquet = load(tmp_path, good.assign(signup=days), "input.parquet")  # datetime64[ns]
    assert pd.api.types.is_datetime64_any_dtype(parquet["signup"])

    for frame, dates in ((csv, {"signup", "last_seen"}), (parquet, {"signup"})):
        result = validate(frame)
        assert result.passed, result.failures  # not 'categorical_levels' failures
        assert {c.column for c in result.warnings if c.rule == "datetime"} == dates
        schema = infer_schema(frame, DATA, RULES)
        assert {c["name"] for c in schema["datetime_columns"]} == dates
        assert not dates & {f["name"] for f in schema["features"]}
    formats = {c["name"]: c["format"] for c in infer_schema(csv, DATA, RULES)["datetime_columns"]}
    assert formats == {"signup": "%Y-%m-%d", "last_seen": "%d/%m/%Y %H:%M"}


def test_codes_sizes_and_times_are_not_dates(tmp_path: Path) -> None:
    good = mixed_dataset(rows=300, seed=3)
    crafted = good.assign(
        year=2000 + np.arange(len(good)) % 20,  # a number, not a date
        plan=np.where(np.arange(len(good)) % 2, "A1", "B7"),
        opens_at=np.where(np.arange(len(good)) % 2, "09:30", "10:00"),
    )
    result = validate(load(tmp_path, crafted))
    assert result.passed, result.failures
    assert not [c for c in result.warnings if c.rule == "datetime"]


# ---------------------------------------------------------------- missing-value texts
def test_missing_value_texts_read_alike_from_csv_and_parquet(tmp_path: Path) -> None:
    good = mixed_dataset(rows=300, seed=3)
    tokens = ["N/A", "NA", "n/a", "", "null", "None", "-", "?"]
    amount = good["x1"].round(3).astype(str).astype(object)
    amount.iloc[: len(tokens) * 3] = tokens * 3
    colour = good["color"].astype(object)
    colour.iloc[100 : 100 + len(tokens)] = tokens
    crafted = good.assign(amount=amount, color=colour, visits=np.arange(len(good)) % 7)
    crafted["visits"] = crafted["visits"].astype(str).astype(object)  # "0".."6" as text
    crafted.loc[[3], "visits"] = "?"

    from_csv = load(tmp_path, crafted)
    from_parquet = load(tmp_path, crafted, "input.parquet")

    pd.testing.assert_frame_equal(from_csv, from_parquet)
    assert from_csv["amount"].dtype == "float64"
    assert from_csv["amount"].isna().sum() == len(tokens) * 3
    assert from_csv["visits"].dtype == "float64" and from_csv["visits"].isna().sum() == 1
    assert from_csv["color"].isna().sum() == good["color"].isna().sum() + len(tokens)
    assert infer_schema(from_csv, DATA, RULES) == infer_schema(from_parquet, DATA, RULES)
    csv_result, parquet_result = validate(from_csv), validate(from_parquet)
    assert csv_result.passed, csv_result.failures
    assert csv_result.to_dict() == parquet_result.to_dict()


# ---------------------------------------------------------------- regression targets
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_numeric_target_with_many_values_is_inferred_as_regression(
    tmp_path: Path, suffix: str
) -> None:
    frame = load(tmp_path, mixed_regression_dataset(rows=300, seed=3), f"input{suffix}")
    distinct = frame["label"].nunique()

    task, reason = infer_task(frame["label"], DATA, RULES)
    result = validate(frame)
    schema = infer_schema(frame, DATA, RULES)

    assert task == "regression"
    assert f"numeric with {distinct} distinct values" in reason
    assert "set data.task: classification" in reason
    assert result.passed, result.failures
    assert schema["task"] == "regression" and "classes" not in schema
    assert schema["target_stats"]["min"] == pytest.approx(frame["label"].min())


def test_classification_forced_on_a_quantity_fails_naming_the_key(tmp_path: Path) -> None:
    frame = load(tmp_path, mixed_regression_dataset(rows=300, seed=3))
    distinct = frame["label"].nunique()
    result = validate(frame, DATA.model_copy(update={"task": "classification"}))
    assert failed(result) == {("classification_target", "label")}
    assert detail(result, "classification_target").startswith(
        f"target 'label' has {distinct} distinct numeric values: looks like regression; "
        "set data.task: regression"
    )


def test_regression_forced_on_a_text_target_fails(tmp_path: Path) -> None:
    frame = load(tmp_path, mixed_dataset(rows=300, seed=3))
    result = validate(frame, DATA.model_copy(update={"task": "regression"}))
    assert ("regression_target", "label") in failed(result)
    assert "must be numeric for data.task: regression" in detail(result, "regression_target")


def test_regression_target_copied_from_a_feature_is_leakage(tmp_path: Path) -> None:
    good = mixed_dataset(rows=300, seed=3)
    frame = load(tmp_path, good.assign(label=(good["x1"] * 10 + 50).round(1)))
    result = validate(frame)
    assert failed(result) == {("leakage", "x1")}


def test_regression_split_is_seeded_and_not_stratified() -> None:
    frame = mixed_regression_dataset(rows=401, seed=5)
    a = held_out_rows(frame, "label", SPLIT, "regression")
    b = held_out_rows(frame, "label", SPLIT, "regression")
    other = held_out_rows(frame, "label", SplitParams(seed=SPLIT.seed + 1), "regression")
    assert (a == b).all() and not (a == other).all()
    assert a.sum() == round(401 * SPLIT.test_size)
    train, test = stratified_split(frame, "label", SPLIT, "regression")
    assert len(train) + len(test) == 401 and len(test) == a.sum()


def test_numeric_class_codes_are_a_classification_target(tmp_path: Path) -> None:
    good = mixed_dataset(rows=300, seed=3)
    codes = good["label"].map({"low": 0, "mid": 1, "high": 2})
    result = validate(load(tmp_path, good.assign(label=codes)))
    assert result.passed, result.failures
    assert "3 distinct numeric values" in detail(result, "classification_target")
