"""Ingest and split: built-in datasets, user files, the stratified seeded split."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset

from mlops_template.config import DataParams, SplitParams
from mlops_template.data import (
    BUILTIN_FILES,
    DataError,
    builtin_csv_path,
    frame_hash,
    load_builtin,
    load_builtin_with_sklearn,
    load_source,
    normalise_columns,
    read_parquet,
    read_parquet_column,
    read_table,
    split_part,
    stratified_split,
    write_parquet_rows,
)


@pytest.mark.parametrize("name", sorted(BUILTIN_FILES))
def test_builtin_csv_reader_equals_the_sklearn_loader(name: str) -> None:
    assert builtin_csv_path(name) is not None, "the fast path is not used"
    pd.testing.assert_frame_equal(load_builtin(name), load_builtin_with_sklearn(name))


def test_diabetes_reader_equals_the_sklearn_loader_unscaled() -> None:
    frame = load_builtin("diabetes")
    pd.testing.assert_frame_equal(frame, load_builtin_with_sklearn("diabetes"))
    assert frame.shape == (442, 11) and frame["target"].dtype == "float64"
    assert frame["sex"].isin([1.0, 2.0]).all()  # raw values, not sklearn's scaled ones


def test_builtin_default_has_string_labels(breast_cancer: pd.DataFrame) -> None:
    assert breast_cancer.shape == (569, 31)
    assert sorted(breast_cancer["target"].unique()) == ["benign", "malignant"]
    assert breast_cancer["target"].value_counts().to_dict() == {"benign": 357, "malignant": 212}


def test_ingest_of_builtin_data_does_not_import_sklearn() -> None:
    code = (
        "import sys; from mlops_template.data import load_builtin; "
        "load_builtin('breast_cancer'); print('sklearn' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_builtin_falls_back_to_sklearn_when_the_file_moved(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import mlops_template.data as data

    monkeypatch.setattr(data, "builtin_csv_path", lambda name: None)
    pd.testing.assert_frame_equal(data.load_builtin("iris"), load_builtin_with_sklearn("iris"))


def test_read_table_csv_and_parquet_give_the_same_frame(tmp_path: Path) -> None:
    frame = mixed_dataset(rows=50)
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv, from_parquet = read_table(tmp_path / "t.csv"), read_table(tmp_path / "t.parquet")
    assert list(from_csv.columns) == list(frame.columns)
    assert from_csv.shape == from_parquet.shape == frame.shape
    np.testing.assert_allclose(from_csv["x2"], from_parquet["x2"])


def test_read_table_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data.source: '.*missing.csv' does not exist"):
        read_table(tmp_path / "missing.csv")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"broken\.parquet' cannot be read"):
        read_table(broken)


def test_empty_csv_reads_as_empty_frame(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("")
    assert read_table(tmp_path / "empty.csv").shape == (0, 0)
    (tmp_path / "header.csv").write_text("a,b\n")
    assert read_table(tmp_path / "header.csv").shape == (0, 2)


def test_load_source_reads_a_user_file_relative_to_the_root(tmp_path: Path) -> None:
    (tmp_path / "data/external").mkdir(parents=True)
    mixed_dataset(rows=30).to_csv(tmp_path / "data/external/m.csv", index=False)
    params = DataParams(source="data/external/m.csv", target="label")
    assert load_source(params, root=tmp_path).shape == (30, 6)


def test_normalise_columns_makes_stripped_strings() -> None:
    frame = pd.DataFrame({" a ": [1], 2: [3]})
    assert list(normalise_columns(frame).columns) == ["a", "2"]
    assert list(frame.columns) == [" a ", 2]  # the input is not modified


def test_frame_hash_sees_values_and_column_names_not_the_index() -> None:
    frame = mixed_dataset(rows=40)
    assert frame_hash(frame) == frame_hash(frame.copy())
    assert frame_hash(frame) == frame_hash(frame.set_axis(range(100, 140)))
    changed = frame.copy()
    changed.loc[3, "x1"] += 1e-9
    assert frame_hash(changed) != frame_hash(frame)
    assert frame_hash(frame.rename(columns={"x1": "y1"})) != frame_hash(frame)


def test_split_is_stratified_disjoint_and_complete() -> None:
    frame = mixed_dataset(rows=600)
    train, test = stratified_split(frame, "label", SplitParams(test_size=0.25, seed=1))
    assert len(train) + len(test) == len(frame)
    assert set(train["customer_id"]).isdisjoint(test["customer_id"])
    overall = frame["label"].value_counts(normalize=True)
    in_test = test["label"].value_counts(normalize=True)
    assert (in_test - overall).abs().max() < 0.01
    assert abs(len(test) / len(frame) - 0.25) < 0.01


def test_split_is_seeded() -> None:
    frame = mixed_dataset(rows=300)
    first = stratified_split(frame, "label", SplitParams(seed=3))[1]
    again = stratified_split(frame, "label", SplitParams(seed=3))[1]
    other = stratified_split(frame, "label", SplitParams(seed=4))[1]
    pd.testing.assert_frame_equal(first, again)
    assert not first["customer_id"].equals(other["customer_id"])


def test_split_keeps_a_rare_class_in_both_parts() -> None:
    frame = pd.DataFrame({"x": range(42), "y": ["a"] * 40 + ["b"] * 2})
    train, test = stratified_split(frame, "y", SplitParams(test_size=0.1, seed=0))
    assert set(train["y"]) == set(test["y"]) == {"a", "b"}


def test_read_parquet_gives_pandas_frame_column_by_column(tmp_path: Path) -> None:
    """The lean reader (one column at a time) returns what pd.read_parquet returns: dtypes,
    missing values, categoricals, time zones, the index, several row groups."""
    frame = pd.DataFrame(
        {
            "x": [1.0, np.nan, 3.0, 4.0],
            "s": ["a", None, "c", "a"],
            "i": [1, 2, 3, 4],
            "b": [True, False, True, False],
            "c": pd.Categorical(["u", "v", None, "u"]),
            "t": pd.to_datetime(["2024-01-01", None, "2024-01-03", "2024-01-04"]).tz_localize(
                "UTC"
            ),
            "n": pd.array([1, None, 3, 4], dtype="Int64"),
        },
        index=pd.Index([5, 6, 7, 8], name="row"),
    )
    frame.to_parquet(tmp_path / "indexed.parquet")
    frame.reset_index().to_parquet(tmp_path / "groups.parquet", index=False, row_group_size=3)
    for name in ("indexed.parquet", "groups.parquet"):
        got = read_parquet(tmp_path / name)
        pd.testing.assert_frame_equal(got, pd.read_parquet(tmp_path / name))
    pd.testing.assert_frame_equal(read_parquet(tmp_path / "indexed.parquet"), frame)


def _typed_frame(rows: int) -> pd.DataFrame:
    """Every kind of column a raw file can hold, with missing values."""
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "x": rng.normal(size=rows),
            "s": rng.choice(["a", "bb", "ccc"], size=rows),
            "i": rng.integers(0, 9, size=rows),
            "b": pd.array(rng.random(rows) < 0.5, dtype="boolean"),
            "c": pd.Categorical(rng.choice(["u", "v"], size=rows)),
            "t": pd.date_range("2024-01-01", periods=rows, freq="h", tz="UTC"),
            "n": pd.array(rng.integers(0, 5, size=rows), dtype="Int64"),
        }
    )
    for name in frame.columns:
        frame.loc[rng.random(rows) < 0.1, name] = None
    return frame


def test_write_parquet_rows_writes_the_pandas_split(tmp_path: Path) -> None:
    """The split stage writes each part from the raw file without pandas: the frame of
    taking the rows in pandas and writing them with to_parquet, and the same bytes but for
    a pandas categorical column (Arrow writes its dictionary differently), so the stage's
    outputs and the DVC hashes downstream did not change for the data the bench uses."""
    raw, plain = tmp_path / "raw.parquet", tmp_path / "plain.parquet"
    frame = _typed_frame(500)
    frame.to_parquet(raw, index=False)  # as the ingest stage writes it
    frame.drop(columns="c").to_parquet(plain, index=False)
    rows = np.random.default_rng(4).random(500) < 0.25
    arrow, pandas = tmp_path / "arrow.parquet", tmp_path / "pandas.parquet"
    for part in (rows, ~rows, np.zeros(500, dtype=bool)):
        for source in (raw, plain):
            write_parquet_rows(source, part, arrow)
            split_part(read_parquet(source), part).to_parquet(pandas, index=False)
            pd.testing.assert_frame_equal(read_parquet(arrow), read_parquet(pandas))
        assert len(read_parquet(arrow)) == part.sum()
        assert arrow.read_bytes() == pandas.read_bytes()


def test_read_parquet_column_is_read_parquets_column_and_names_a_missing_one(
    tmp_path: Path,
) -> None:
    raw = tmp_path / "raw.parquet"
    _typed_frame(50).to_parquet(raw, index=False)
    for name in ("s", "i", "c", "n"):
        pd.testing.assert_series_equal(read_parquet_column(raw, name), read_parquet(raw)[name])
    with pytest.raises(KeyError, match=r"raw\.parquet: no column 'label'"):
        read_parquet_column(raw, "label")
