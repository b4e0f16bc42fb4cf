"""Ingest and split: raw source -> `data/raw/dataset.parquet` -> train/test parquet files.

Pure functions take and return DataFrames; the CLI does the reading and writing.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.config import DataParams, SplitParams


class DataError(ValueError):
    """A data problem a user must fix; the message names the file, key or column."""


# The built-in datasets are CSV files inside scikit-learn's package. Reading them with
# pandas saves the ingest stage the ~1 s it takes to import scikit-learn; the feature
# names are those scikit-learn's loaders give (spaces -> "_"). A unit test checks both
# paths give the same frame; if a future scikit-learn moves the files, the loader is used.
BUILTIN_FILES = {"breast_cancer": "breast_cancer.csv", "wine": "wine_data.csv", "iris": "iris.csv"}
BUILTIN_FEATURES = {
    "breast_cancer": [
        f"{name}_{stat}" if stat == "error" else f"{stat}_{name}"
        for stat in ("mean", "error", "worst")
        for name in (
            "radius", "texture", "perimeter", "area", "smoothness", "compactness",
            "concavity", "concave_points", "symmetry", "fractal_dimension",
        )
    ],
    "wine": [
        "alcohol", "malic_acid", "ash", "alcalinity_of_ash", "magnesium", "total_phenols",
        "flavanoids", "nonflavanoid_phenols", "proanthocyanins", "color_intensity", "hue",
        "od280/od315_of_diluted_wines", "proline",
    ],
    "iris": ["sepal_length_(cm)", "sepal_width_(cm)", "petal_length_(cm)", "petal_width_(cm)"],
}  # fmt: skip
BUILTIN_TARGET = "target"


# The regression dataset: two whitespace-separated files (features, target), unscaled
# (sklearn's load_diabetes(scaled=False)): values as a request to the API would carry them.
DIABETES_FILES = ("diabetes_data_raw.csv.gz", "diabetes_target.csv.gz")
DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def load_builtin(name: str) -> pd.DataFrame:
    """A dataset that ships inside scikit-learn (no network), with readable class names
    (diabetes: a numeric target, the regression example)."""
    frame = _read_diabetes() if name == "diabetes" else _read_builtin_csv(name)
    return frame if frame is not None else load_builtin_with_sklearn(name)


def builtin_csv_path(name: str) -> Path | None:
    """Where scikit-learn keeps the dataset's CSV, found without importing scikit-learn."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    path = path / BUILTIN_FILES[name]
    return path if path.is_file() else None


def _sklearn_data_dir() -> Path | None:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"


def _read_diabetes() -> pd.DataFrame | None:
    directory = _sklearn_data_dir()
    if directory is None or not all((directory / f).is_file() for f in DIABETES_FILES):
        return None
    features = np.loadtxt(directory / DIABETES_FILES[0])
    target = np.loadtxt(directory / DIABETES_FILES[1])
    if features.shape != (len(target), len(DIABETES_FEATURES)):
        return None
    frame = pd.DataFrame(features, columns=DIABETES_FEATURES)
    frame[BUILTIN_TARGET] = target
    return frame


def _read_builtin_csv(name: str) -> pd.DataFrame | None:
    path = builtin_csv_path(name)
    if path is None:
        return None
    # first line: n_rows, n_features, class names (the target column holds class indices)
    header = path.read_text().split("\n", 1)[0].strip().split(",")
    features = BUILTIN_FEATURES[name]
    if len(header) < 4 or header[1] != str(len(features)):
        return None
    dtypes = {i: "float64" for i in range(len(features))} | {len(features): "int64"}
    frame = pd.read_csv(path, skiprows=1, header=None, dtype=dtypes)
    if frame.shape != (int(header[0]), len(features) + 1):
        return None
    frame.columns = [*features, BUILTIN_TARGET]
    frame[BUILTIN_TARGET] = np.asarray(header[2:])[frame[BUILTIN_TARGET].to_numpy()]
    return frame


def load_builtin_with_sklearn(name: str) -> pd.DataFrame:
    """The same dataset through scikit-learn's loader (the reference, and the fallback)."""
    from sklearn import datasets

    if name == "diabetes":
        frame = datasets.load_diabetes(as_frame=True, scaled=False).frame.copy()
        return frame.astype("float64")
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
    frame[BUILTIN_TARGET] = names[frame[BUILTIN_TARGET].to_numpy()]
    return frame


# Texts that mean "no value", in CSV and Parquet alike: pandas' own CSV defaults plus the
# "-" and "?" that exports and public datasets use. A CSV reader turns them into missing
# values; a Parquet file keeps them as text, so `missing_tokens_to_na` does the same there
# and a numeric column written either way reads as the same numbers with gaps.
MISSING_TOKENS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null", "-", "?",
)  # fmt: skip


def read_file(path: Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame, missing-value texts treated alike in both."""
    if path.suffix.lower() == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=list(MISSING_TOKENS))
    return missing_tokens_to_na(read_parquet(path))


def read_parquet(path: Path) -> pd.DataFrame:
    """`pd.read_parquet(path)`'s frame, read one column at a time.

    Arrow decodes a whole row group at once, and a file written in one go is one row
    group: reading it whole takes ~2.5x the frame on top of the frame (1e6 rows x 21
    columns: ~530 MB for a 190 MB frame). Column by column, each column's buffers are
    freed before the next is decoded, and the conversion to pandas releases the Arrow
    columns as it goes (self_destruct): ~1.4x (bench/pipeline.py)."""
    import pyarrow.parquet as pq

    return _read_columns(pq.ParquetFile(path))


def _read_columns(source: Any, rows: Any = None) -> pd.DataFrame:
    """A Parquet file's frame, read one column at a time (read_parquet), keeping only
    `rows` (an Arrow array of row numbers; None: all) of each column before the next is
    read, and converted to pandas releasing the Arrow columns as it goes."""
    return _read_table(source, rows).to_pandas(self_destruct=True, split_blocks=True)


def _read_table(source: Any, rows: Any = None) -> Any:
    """_read_columns' Arrow table, before the conversion to pandas."""
    import pyarrow as pa

    schema = source.schema_arrow
    columns = []
    for name in schema.names:
        column = source.read(columns=[name], use_threads=False).column(0)
        columns.append(column if rows is None else column.take(rows))
        del column
    return pa.Table.from_arrays(columns, schema=schema)


def write_parquet_rows(source: Path, rows: np.ndarray, path: Path) -> None:
    """The rows of Parquet file `source` where `rows` is True, written to `path` as
    `split_part(read_parquet(source), rows).to_parquet(path, index=False)` writes them
    (the source's schema and pandas metadata are kept: the same frame when read, the same
    bytes but for pandas categorical columns), without pandas: only those rows are ever
    in memory, read one column at a time (the split stage, 1e6 rows: 3.2x the frame
    through pandas, 1.9x this way; bench/pipeline.py)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _read_table(pq.ParquetFile(source), pa.array(np.flatnonzero(rows)))
    pq.write_table(table, path)


def read_parquet_column(path: Path, name: str) -> pd.Series:
    """One column of a Parquet file, as read_parquet would give it."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    if name not in source.schema_arrow.names:
        raise KeyError(f"{path}: no column {name!r}")
    table = source.read(columns=[name], use_threads=False)
    return table.to_pandas(self_destruct=True)[name]


def release_arrow_memory() -> None:
    """Hand the memory Arrow's pool keeps after a conversion (read_parquet) back to the
    OS: the train stage calls it between phases. It keeps the freed raw rows through the
    model's fit otherwise (1e6 rows: ~170 MB of the stage's peak; glibc's malloc_trim on
    top of it gives nothing measurable)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def read_parquet_sample(path: Path, max_rows: int | None, seed: int) -> pd.DataFrame:
    """At most `max_rows` rows of a Parquet file (None: all), a seeded sample in file
    order, read one column at a time and taken before the conversion to pandas: the whole
    file is never in memory (read_parquet's frame when the file has no more rows)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    rows = source.metadata.num_rows
    if max_rows is None or rows <= max_rows:
        return _read_columns(source)
    take = pa.array(np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False)))
    return _read_columns(source, take)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV or Parquet file, with errors that name the file."""
    if not path.exists():
        raise DataError(f"data.source: {str(path)!r} does not exist")
    try:
        return read_file(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except Exception as exc:  # parser errors of either format
        raise DataError(f"data.source: {str(path)!r} cannot be read: {exc}") from exc


def missing_tokens_to_na(frame: pd.DataFrame) -> pd.DataFrame:
    """What a CSV read would make of a Parquet file's text columns: `MISSING_TOKENS` become
    missing values, and a text column whose remaining values are all numbers becomes
    numeric (int64 without gaps, float64 with them, as `read_csv` infers)."""
    out = frame.copy(deep=False)  # copy-on-write: only the columns replaced are new
    for column in out.columns:
        values = out[column]
        if not (pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values)):
            continue
        is_token = values.isin(MISSING_TOKENS).to_numpy()
        if is_token.any():
            values = values.where(~is_token)
        present = values.notna()
        if present.any():
            numbers = pd.to_numeric(values, errors="coerce")
            if numbers.notna().sum() == present.sum() and pd.api.types.is_numeric_dtype(numbers):
                values = numbers
        out[column] = values
    return out


def load_source(params: DataParams, root: Path = Path()) -> pd.DataFrame:
    if params.builtin is not None:
        return load_builtin(params.builtin)
    return read_table(root / params.source)


def normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Column names as stripped strings (Parquet and the ONNX inputs need strings)."""
    renamed = frame.copy(deep=False)  # copy-on-write: the data is not copied
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
    frame: pd.DataFrame, target: str, params: SplitParams, task: str = "classification"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded train/test split: stratified for classification (keeps every class in both
    parts), a seeded random share of the rows for regression (`task`: the schema's).

    Done with numpy rather than sklearn so the split stage starts fast.
    """
    is_test = held_out_rows(frame, target, params, task)
    return split_part(frame, ~is_test), split_part(frame, is_test)


def split_part(frame: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """The rows of `frame` where `rows` is True, numbered from 0 (one part of the split)."""
    return frame.iloc[rows].reset_index(drop=True)


def held_out_rows(
    frame: pd.DataFrame, target: str, params: SplitParams, task: str = "classification"
) -> np.ndarray:
    """Which rows `stratified_split` puts in the test set (validation measures copies
    between the two parts before the split stage writes them)."""
    rng = np.random.default_rng(params.seed)
    if task == "regression":
        # a number per row, no classes to keep apart: a seeded share of all rows, at
        # least one row on each side
        n_test = round(len(frame) * params.test_size)
        if len(frame) >= 2:
            n_test = min(max(n_test, 1), len(frame) - 1)
        is_test = np.zeros(len(frame), dtype=bool)
        is_test[rng.permutation(len(frame))[:n_test]] = True
        return is_test
    # labels as codes: no string object per row (1e6 rows: ~60 MB)
    codes, labels = pd.factorize(frame[target].astype(str), use_na_sentinel=False)
    test_rows: list[np.ndarray] = []
    for label in sorted(labels):
        rows = np.flatnonzero(codes == labels.get_loc(label))
        rng.shuffle(rows)
        n_test = round(len(rows) * params.test_size)
        if len(rows) >= 2:
            n_test = min(max(n_test, 1), len(rows) - 1)
        test_rows.append(rows[:n_test])
    test_index = np.sort(np.concatenate(test_rows)) if test_rows else np.array([], dtype=int)
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[test_index] = True
    return is_test


# --- labelled feedback (python -m mlops_template monitor append) ----------------------
FEEDBACK_SUFFIXES = (".csv", ".parquet", ".pq")


def read_feedback(directory: Path) -> list[tuple[str, pd.DataFrame]]:
    """The labelled batches under `directory` (data/external/feedback/) in file-name order:
    `monitor append` names them by UTC time, so the oldest comes first."""
    if not directory.is_dir():
        return []
    batches = []
    for path in sorted(directory.iterdir()):
        if not path.is_file() or path.suffix.lower() not in FEEDBACK_SUFFIXES:
            continue
        try:
            frame = read_file(path)
        except Exception as exc:
            raise DataError(f"feedback file {str(path)!r} cannot be read: {exc}") from exc
        batches.append((str(path), normalise_columns(frame)))
    return batches


def append_feedback(
    frame: pd.DataFrame,
    batches: list[tuple[str, pd.DataFrame]],
    optional: tuple[str, ...] | list[str] = (),
) -> pd.DataFrame:
    """The source rows, then the feedback rows that are not already there.

    Identical rows are dropped (appending a batch twice changes nothing; the source's own
    duplicates are left to validation). Feedback columns are cast to the source's dtypes,
    so the schema does not change. A source column missing from a batch is an error naming
    the file and the column, except `optional` ones (id and dropped columns), which are
    filled with missing values; so is a column the source does not have.
    """
    if not batches:
        return frame
    parts = [frame]
    for name, batch in batches:
        missing = [c for c in frame.columns if c not in batch.columns and c not in optional]
        if missing:
            raise DataError(f"feedback file {name!r} lacks the column(s) {missing} of the data")
        extra = [c for c in batch.columns if c not in frame.columns]
        if extra:
            raise DataError(f"feedback file {name!r} has column(s) {extra} the data does not have")
        aligned = batch.reindex(columns=frame.columns)
        for column in frame.columns:
            if column not in batch.columns:
                continue  # an optional column, all missing
            try:
                aligned[column] = aligned[column].astype(frame[column].dtype)
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"feedback file {name!r}: column {column!r} does not fit the data's type "
                    f"{frame[column].dtype} ({exc})"
                ) from None
        parts.append(aligned)
    combined = pd.concat(parts, ignore_index=True)
    repeated = combined.duplicated(keep="first").to_numpy().copy()
    repeated[: len(frame)] = False
    return combined[~repeated].reset_index(drop=True)
