"""Each data rule, triggered by a crafted bad CSV and the real `ingest` + `validate`
commands in a throw-away project: exit code, report naming column and rule, and earlier
outputs left alone."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset
from tests.helpers import FIXTURE_PARAMS, edit_params, run

SOURCE = "data/external/input.csv"


def good_frame() -> pd.DataFrame:
    return mixed_dataset(rows=300, seed=3)


def with_text_in_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({"x1": object})
    frame.loc[[4, 9, 11], "x1"] = "twelve"
    return frame


def with_missing(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[frame.index[:120], "x1"] = np.nan  # 40 % > validate.max_missing_fraction 0.3
    return frame


def with_duplicates(frame: pd.DataFrame) -> pd.DataFrame:
    copies = frame.head(30).assign(customer_id=lambda f: f["customer_id"] + 1000)
    return pd.concat([frame, copies], ignore_index=True)  # ~1 in 8 test rows copies a train row


def with_infinity(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[7, "x2"] = np.inf
    return frame


# case -> (how to break the good frame, rule, column the report must name)
CASES: dict[str, tuple[Callable[[pd.DataFrame], pd.DataFrame | None], str, str | None]] = {
    "missing target column": (lambda f: f.rename(columns={"label": "Label"}), "target_present", "label"),
    "single class": (lambda f: f.assign(label="mid"), "min_classes", "label"),
    "empty file": (lambda f: None, "not_empty", None),
    "header only": (lambda f: f.head(0), "not_empty", None),
    "too few rows": (lambda f: f.head(12), "min_rows", None),
    "all-null column": (lambda f: f.assign(notes=np.nan), "all_null", "notes"),
    "text in a numeric column": (with_text_in_numbers, "numeric_parse", "x1"),
    "infinite value": (with_infinity, "finite", "x2"),
    "leakage column": (lambda f: f.assign(outcome_code=f["label"].map({"low": 1, "mid": 2, "high": 3})), "leakage", "outcome_code"),
    "test rows copying training rows": (with_duplicates, "test_copies", None),
    "regression target copying a feature": (lambda f: f.assign(label=f["x1"].round(2)), "leakage", "x1"),
    "missing fraction": (with_missing, "missing_fraction", "x1"),
}  # fmt: skip


def make_project(root: Path, frame: pd.DataFrame | None) -> Path:
    """A minimal project: params.yaml pointing at data/external/input.csv, nothing else."""
    root.mkdir(parents=True)
    shutil.copy(FIXTURE_PARAMS, root / "params.yaml")
    edit_params(
        root, **{"data.source": SOURCE, "data.target": "label", "data.id_columns": ["customer_id"]}
    )
    (root / "data/external").mkdir(parents=True)
    if frame is None:
        (root / SOURCE).write_text("")
    else:
        frame.to_csv(root / SOURCE, index=False)
    return root


def cli(project: Path, command: str, check: bool = True) -> tuple[int, str]:
    done = run([sys.executable, "-m", "mlops_template", command], project, check=check)
    return done.returncode, done.stderr


def fingerprint(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Content hash, inode and mtime of every file: 'untouched' means all three equal."""
    return {
        str(p.relative_to(folder)): (
            hashlib.sha256(p.read_bytes()).hexdigest(),
            p.stat().st_ino,
            p.stat().st_mtime_ns,
        )
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def earlier_outputs(project: Path) -> None:
    """Stand-ins for what an earlier successful run left behind."""
    (project / "models").mkdir()
    (project / "models/model.onnx").write_bytes(b"onnx from the last good run")
    (project / "models/model.skops").write_bytes(b"skops from the last good run")
    (project / "data/schema.json").write_text('{"stale": true}')


def test_good_data_passes_and_writes_the_schema(tmp_path: Path) -> None:
    """The control: the same set-up with intact data passes (so the failures below are
    caused by what each case breaks)."""
    project = make_project(tmp_path / "good", good_frame())
    cli(project, "ingest")
    code, _ = cli(project, "validate")
    assert code == 0
    schema = json.loads((project / "data/schema.json").read_text())
    assert schema["classes"] == ["high", "low", "mid"]
    report = json.loads((project / "reports/validation.json").read_text())
    assert report["passed"] is True and report["failures"] == []
    assert "# Data validation: PASSED" in (project / "reports/validation.md").read_text()


def test_warnings_are_logged_and_dates_are_left_out_of_the_schema(tmp_path: Path) -> None:
    good = good_frame()
    days = pd.Timestamp("2021-06-01") + pd.to_timedelta(np.arange(len(good)), unit="D")
    frame = good.assign(signup=days.strftime("%Y-%m-%d"), row_number=np.arange(len(good)))
    project = make_project(tmp_path / "project", frame)
    cli(project, "ingest")

    code, stderr = cli(project, "validate")

    assert code == 0
    assert "column 'signup' warns on rule datetime: dates (format '%Y-%m-%d')" in stderr
    assert "column 'row_number' warns on rule id_like" in stderr
    schema = json.loads((project / "data/schema.json").read_text())
    assert schema["datetime_columns"] == [{"name": "signup", "format": "%Y-%m-%d"}]
    assert "signup" not in [f["name"] for f in schema["features"]]
    report = json.loads((project / "reports/validation.json").read_text())
    assert {(w["rule"], w["column"]) for w in report["warnings"]} == {
        ("datetime", "signup"),
        ("id_like", "row_number"),
    }


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_fails_validation_naming_column_and_rule(tmp_path: Path, case: str) -> None:
    breaker, rule, column = CASES[case]
    project = make_project(tmp_path / "project", breaker(good_frame()))
    cli(project, "ingest")
    earlier_outputs(project)
    raw_before = fingerprint(project / "data/raw")
    models_before = fingerprint(project / "models")

    code, stderr = cli(project, "validate", check=False)

    assert code == 1, stderr
    where = f"column {column!r}" if column else "dataset"
    assert f"{where} fails rule {rule}" in stderr
    report = json.loads((project / "reports/validation.json").read_text())
    assert report["passed"] is False
    assert {"rule": rule, "column": column} in [
        {"rule": f["rule"], "column": f["column"]} for f in report["failures"]
    ]
    markdown = (project / "reports/validation.md").read_text()
    assert markdown.startswith("# Data validation: FAILED")
    assert f"**{rule}** ({column or 'dataset'})" in markdown
    # earlier outputs: the raw data and the last model are untouched; the stale schema
    # of the previous data is gone, so `split` cannot run on unvalidated data
    assert fingerprint(project / "data/raw") == raw_before
    assert fingerprint(project / "models") == models_before
    assert not (project / "data/schema.json").exists()


def test_split_refuses_data_that_did_not_pass_validation(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", good_frame().assign(notes=np.nan))
    cli(project, "ingest")
    earlier_outputs(project)
    assert cli(project, "validate", check=False)[0] == 1
    code, stderr = cli(project, "split", check=False)
    assert code == 2 and "data/schema.json" in stderr
    assert not (project / "data/split").exists()


def test_split_names_a_target_that_is_not_a_column_of_the_validated_data(
    tmp_path: Path,
) -> None:
    """data.target changed after validation (split run on its own, not by `dvc repro`):
    exit 2 naming the key, its value and the file."""
    project = make_project(tmp_path / "project", good_frame())
    cli(project, "ingest")
    cli(project, "validate")
    edit_params(project, **{"data.target": "churned"})
    code, stderr = cli(project, "split", check=False)
    assert code == 2, stderr
    assert "data.target: 'churned' is not a column of data/raw/dataset.parquet" in stderr
    assert not (project / "data/split/train.parquet").exists()


def test_unreadable_source_fails_ingest_naming_the_file(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", good_frame())
    (project / SOURCE).unlink()
    code, stderr = cli(project, "ingest", check=False)
    assert code == 2
    assert f"data.source: '{SOURCE}' does not exist" in stderr
    assert not (project / "data/raw").exists()


def test_check_refuses_a_missing_source_file_before_any_stage(tmp_path: Path) -> None:
    project = make_project(tmp_path / "project", good_frame())
    edit_params(project, **{"data.source": "data/external/typo.csv"})
    code, stderr = cli(project, "check", check=False)
    assert code == 2
    assert "data.source: 'data/external/typo.csv' does not exist" in stderr
