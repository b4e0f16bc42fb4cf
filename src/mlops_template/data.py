"""Ingest and split: raw source -> `data/raw/dataset.parquet` -> train/test parquet files.

Pure functions take and return DataFrames; the CLI does the reading and writing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_template.config import DataParams, SplitParams


class DataError(ValueError):
    """A data problem a user must fix; the message names the file, key or column."""


def load_builtin(name: str) -> pd.DataFrame:
    """A dataset that ships inside scikit-learn (no network), with readable class names."""
    from sklearn import datasets  # lazy: sklearn costs seconds to import

    loader = {
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
        "iris": datasets.load_iris,
    }[name]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    # snake_case names ("mean radius" -> "mean_radius"): friendlier as API fields
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    names = np.asarray(bunch.target_names)
    frame["target"] = names[frame["target"].to_numpy()]
    return frame


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, with errors that name the file."""
    if not path.exists():
        raise DataError(f"data.source: {str(path)!r} does not exist")
    try:
        if path.suffix.lower() == ".csv":
            return pd.read_csv(path)
        return pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except Exception as exc:  # parser errors of either format
        raise DataError(f"data.source: {str(path)!r} cannot be read: {exc}") from exc


def load_source(params: DataParams, root: Path = Path()) -> pd.DataFrame:
    if params.builtin is not None:
        return load_builtin(params.builtin)
    return read_table(root / params.source)


def normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Column names as stripped strings (Parquet and the ONNX inputs need strings)."""
    renamed = frame.copy()
    renamed.columns = [str(c).strip() for c in frame.columns]
    return renamed


def frame_hash(frame: pd.DataFrame) -> str:
    """A content hash of a table, independent of the file format it came from."""
    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(",".join(map(str, frame.dtypes)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def stratified_split(
    frame: pd.DataFrame, target: str, params: SplitParams
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded, stratified train/test split that keeps every class in both parts.

    Done with numpy rather than sklearn so the split stage starts fast.
    """
    rng = np.random.default_rng(params.seed)
    labels = frame[target].astype(str).to_numpy()
    test_rows: list[np.ndarray] = []
    for label in sorted(set(labels)):
        rows = np.flatnonzero(labels == label)
        rng.shuffle(rows)
        n_test = round(len(rows) * params.test_size)
        if len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)
        test_rows.append(rows[:n_test])
    test_index = np.sort(np.concatenate(test_rows)) if test_rows else np.array([], dtype=int)
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[test_index] = True
    train = frame.iloc[~is_test].reset_index(drop=True)
    test = frame.iloc[is_test].reset_index(drop=True)
    return train, test
