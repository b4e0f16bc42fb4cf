"""Batch scoring: CSV / Parquet files through the served model, chunk by chunk.

`python -m mlops_template predict --input FILE|DIR --output FILE` (commands/predict.py)
is a thin shell around `run_batch`. What is shared with the API (serve.py), so a row
gets the same prediction either way: the request contract (`Contract`, built from
data/schema.json and the serve.* params), the ONNX feeds (`model_inputs`), the loaded,
verified model (`LoadedModel.predict` / `predict_values`) and the prediction log
(`predlog.PredictionLogger`, one chunk = one request).

Memory stays flat: a file is read `chunk_rows` rows at a time (pandas `read_csv`
chunks; pyarrow `ParquetFile.iter_batches`, whose peak also holds one row group), each
chunk is validated, scored, logged and appended to the output, then dropped. The output
and the rejects file are written to temporary files next to them and renamed only when
the run succeeds: a failed run never leaves a half file under the output's name, and an
existing output is untouched until then.

Validation (per row, vectorised; the API's rules, in a file's terms):
- every feature must be a column of every input file (else `BatchError` before anything
  is scored, naming the column and the file); other columns are ignored (`keep` passes
  some through to the output);
- a missing value (an empty CSV cell, a Parquet null, NaN) is a null: imputed by the
  model, as the API does;
- numeric features: numbers (a CSV cell that does not parse as a number, a Parquet
  string or boolean is refused), finite and within float32 range;
- categorical features: non-empty strings (a CSV has no types: its cells are read as
  text; a Parquet column of numbers is refused); a value absent from training is scored
  and counted (`serve.unknown_categories: accept`) or refused (`reject`);
- a row the model gives no finite output for is refused (the API answers 422).
A refused row is written to the rejects file (input file, 0-based data row in that file,
column, reason, value) and never scored nor logged; more than `max_bad_rows` refused
rows stop the run (`BatchError`).

Output columns: `request_id`, `row` (0-based position of the row within that request:
the scored rows of one chunk, in file order), the `keep` columns, `prediction` and, for a
classifier, `probability:<class>` per class (the API's `predictions` / `probabilities`
in the order of `classes`). The prediction log holds the same (request id, position):
that pair is how delayed labels are joined back to what was served.
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import secrets
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops_template.log import get_logger
from mlops_template.serve import FLOAT32_MAX, Batch, Contract, LoadedModel, model_inputs

logger = get_logger("batch")

CSV_SUFFIXES = (".csv",)
PARQUET_SUFFIXES = (".parquet", ".pq")
REQUEST_PREFIX = "batch"
REJECT_COLUMNS = ("file", "row", "column", "reason", "value")
MAX_VALUE_CHARS = 200
LOG_WAIT_SECONDS = 300.0  # the log writer's backlog a chunk waits for, at most

Format = Literal["csv", "parquet"]


class BatchError(ValueError):
    """A user error: bad input files or arguments, or too many refused rows."""


@dataclass(frozen=True)
class BatchConfig:
    chunk_rows: int = 50_000
    max_bad_rows: int | None = 0  # None: no limit
    keep: tuple[str, ...] = ()
    run_id: str = ""


@dataclass
class BatchResult:
    run_id: str
    output: Path
    rejects: Path
    files: int = 0
    rows_read: int = 0
    rows_scored: int = 0
    bad_rows: int = 0
    requests: int = 0
    unknown_categories: int = 0  # values scored though absent from training (accept)
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)  # refused rows per column

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds > 0 else math.inf


def new_run_id() -> str:
    """Sortable and unique: UTC second of the start + 8 random hex digits."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def request_id(run_id: str, chunk: int) -> str:
    return f"{REQUEST_PREFIX}-{run_id}-{chunk}"


def rejects_path(output: Path) -> Path:
    """`<output stem>.rejects.csv` next to the output."""
    return output.with_name(f"{output.stem}.rejects.csv")


def file_format(path: Path) -> Format:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return "csv"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise BatchError(
        f"{path}: unknown format {path.suffix or '(no suffix)'!r}: expected .csv, .parquet or .pq"
    )


def input_files(path: Path, output: Path | None = None) -> list[Path]:
    """The file, or a directory's CSV and Parquet files (sorted by name; hidden files and
    other suffixes are skipped with a warning)."""
    if not path.exists():
        raise BatchError(f"{path}: no such file or directory")
    if path.is_file():
        file_format(path)
        return [path]
    if output is not None and output.resolve().parent == path.resolve():
        raise BatchError(
            f"--output {output} is inside the input directory {path}: a rerun would score it"
        )
    files, skipped = [], []
    for item in sorted(path.iterdir()):
        if item.name.startswith(".") or not item.is_file():
            continue
        if item.suffix.lower() in CSV_SUFFIXES + PARQUET_SUFFIXES:
            files.append(item)
        else:
            skipped.append(item.name)
    if skipped:
        logger.warning("%s: skipped %d file(s) that are not CSV/Parquet: %s", path, len(skipped),
                       ", ".join(skipped[:10]))  # fmt: skip
    if not files:
        raise BatchError(f"{path}: no .csv or .parquet files in this directory")
    return files


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:  # the serving image installs no pyarrow
        raise BatchError("Parquet needs pyarrow (the train dependency group): use CSV") from None
    return pyarrow


def file_columns(path: Path) -> list[str]:
    if file_format(path) == "csv":
        try:
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        except pd.errors.EmptyDataError:
            return []
    pa = _pyarrow()
    return list(pa.parquet.ParquetFile(path).schema_arrow.names)


def check_columns(files: Sequence[Path], contract: Contract, keep: Sequence[str]) -> None:
    """Every feature and kept column in every file, before anything is scored."""
    for path in files:
        present = set(file_columns(path))
        for name in (*contract.features, *keep):
            if name not in present:
                what = (
                    "--keep column" if name in keep and name not in contract.features else "feature"
                )
                raise BatchError(
                    f"{path}: column {name!r} is missing (a {what} of the model; every input "
                    f"file needs every feature of data/schema.json: {', '.join(contract.features)})"
                )


def read_chunks(
    path: Path, contract: Contract, keep: Sequence[str], chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """The file's feature and kept columns, `chunk_rows` rows at a time."""
    columns = list(dict.fromkeys((*contract.features, *keep)))
    if file_format(path) == "csv":
        # A CSV has no types: categorical features and kept columns are read as text
        # (an id "007" stays "007"), numeric features parsed (a bad cell is refused later).
        text = {name: str for name in (*contract.categorical, *keep)}
        try:
            reader = pd.read_csv(path, usecols=columns, dtype=text, chunksize=chunk_rows)
        except pd.errors.EmptyDataError:
            return
        with reader:
            yield from reader
        return
    pa = _pyarrow()
    parquet = pa.parquet.ParquetFile(path)
    for record_batch in parquet.iter_batches(batch_size=chunk_rows, columns=columns):
        yield record_batch.to_pandas()


# --------------------------------------------------------------------------------------
# Validation (pure)
# --------------------------------------------------------------------------------------


@dataclass
class Checked:
    """A validated chunk: the good rows' feature columns (numeric float64 with NaN for a
    null, categorical object arrays with None) and the problems of the others."""

    good: np.ndarray  # bool per input row
    columns: dict[str, np.ndarray]
    problems: list[tuple[int, str, str, Any]]  # (row in chunk, column, reason, value)
    unknown: int


def _number_column(values: pd.Series, text: bool) -> tuple[np.ndarray, np.ndarray, str]:
    """(float64 values, bad mask, reason) of a numeric feature. `text`: a CSV column,
    whose cells are parsed as numbers."""
    kind = values.dtype.kind
    if kind in "iuf":
        return values.to_numpy(dtype=np.float64, na_value=np.nan), np.zeros(len(values), bool), ""
    if kind == "b" or isinstance(values.dtype, pd.BooleanDtype):
        missing = values.isna().to_numpy()
        return np.full(len(values), np.nan), ~missing, "not a number (a boolean)"
    objects = values.astype(object)
    missing = pd.isna(objects).to_numpy()
    if text:
        parsed = pd.to_numeric(objects, errors="coerce").to_numpy(dtype=np.float64)
        return parsed, ~missing & np.isnan(parsed), "not a number"
    is_number = np.fromiter(
        (
            isinstance(v, int | float | np.integer | np.floating)
            and not isinstance(v, bool | np.bool_)
            for v in objects
        ),
        bool,
        len(objects),
    )
    bad = ~missing & ~is_number
    floats = np.where(bad | missing, np.nan, objects).astype(np.float64)
    return floats, bad, "not a number (wrong type)"


@dataclass
class _Text:
    """A categorical feature's column, per row: its values (None for a null), and which
    are null, not strings, empty strings, and training levels."""

    values: np.ndarray  # object
    missing: np.ndarray
    not_text: np.ndarray
    empty: np.ndarray
    known: np.ndarray


def _text_column(values: pd.Series, levels: Collection[str]) -> _Text:
    """A categorical feature's column checked. An Arrow string column (Parquet, and CSV
    text with pyarrow installed) is dictionary-encoded in C and each check made once per
    distinct value, its Python strings made once per distinct value too; any other
    column (objects of any type) value by value."""
    rows = len(values)
    encoded = _dictionary_encoded(values)
    if encoded is not None:
        codes, distinct = encoded  # codes: -1 for a null
        known = np.fromiter((v in levels for v in distinct), bool, len(distinct))
        return _Text(
            values=np.append(distinct, None)[codes],
            missing=codes < 0,
            not_text=np.zeros(rows, dtype=bool),
            empty=np.append(distinct == "", False)[codes],
            known=np.append(known, False)[codes],
        )
    objects = values.astype(object).to_numpy()
    missing = pd.isna(objects)
    if pd.api.types.infer_dtype(objects, skipna=True) in ("string", "empty"):
        not_text = np.zeros(rows, dtype=bool)
    else:
        not_text = ~missing & np.fromiter((type(v) is not str for v in objects), bool, rows)
    cleaned = objects.copy()
    cleaned[missing] = None
    return _Text(
        values=cleaned,
        missing=missing,
        not_text=not_text,
        empty=objects == "",
        known=values.isin(levels).to_numpy() if levels else np.ones(rows, dtype=bool),
    )


def _dictionary_encoded(values: pd.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(codes, distinct strings as an object array) of a pandas string column backed by
    Arrow, codes -1 for a null; None for any other column."""
    dtype = values.dtype
    if not isinstance(dtype, pd.StringDtype) or dtype.storage != "pyarrow":
        return None
    pa = _arrow()
    if pa is None:
        return None
    array = values.array.__arrow_array__()
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    encoded = array.dictionary_encode()
    codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.intp)
    distinct = np.empty(len(encoded.dictionary), dtype=object)
    distinct[:] = encoded.dictionary.to_pylist()
    return codes, distinct


def validate_chunk(contract: Contract, frame: pd.DataFrame, text: bool) -> Checked:
    """The API's rules on one chunk (see the module docstring); `text`: read from CSV."""
    rows = len(frame)
    good = np.ones(rows, dtype=bool)
    columns: dict[str, np.ndarray] = {}
    problems: list[tuple[int, str, str, Any]] = []
    unknown = 0

    def refuse(name: str, bad: np.ndarray, reason: str, shown: Any) -> None:
        nonlocal good
        for row in np.flatnonzero(bad):
            problems.append((int(row), name, reason, shown.iloc[row]))
        good &= ~bad

    for name in contract.numeric:
        raw = frame[name]
        values, bad, reason = _number_column(raw, text)
        if bad.any():
            refuse(name, bad, reason, raw)
        infinite = ~bad & np.isinf(values)
        if infinite.any():
            refuse(
                name,
                infinite,
                "not a finite number (Infinity, or too large, e.g. 1e400); leave it empty for a missing value",
                raw,
            )
        out_of_range = ~bad & ~infinite & (np.abs(values) > FLOAT32_MAX)
        if out_of_range.any():
            refuse(
                name,
                out_of_range,
                f"out of float32 range (|x| > {FLOAT32_MAX:.7g}: the model computes in float32)",
                raw,
            )
        columns[name] = values
    for name in contract.categorical:
        raw = frame[name]
        levels = contract.levels[name]
        text = _text_column(raw, levels)
        missing, not_text = text.missing, text.not_text
        if not_text.any():
            refuse(name, not_text, "not a string (wrong type)", raw)
        present = ~missing & ~not_text
        empty = present & text.empty
        if empty.any():
            refuse(name, empty, "an empty string; leave it null for a missing value", raw)
        if levels:
            strange = present & ~empty & ~text.known
            if strange.any():
                if contract.unknown_categories == "reject":
                    allowed = ", ".join(sorted(levels)[:20])
                    refuse(
                        name,
                        strange,
                        f"unknown category (serve.unknown_categories: reject; allowed: {allowed})",
                        raw,
                    )
                else:
                    unknown += int(strange.sum())
        columns[name] = text.values
    problems.sort(key=lambda p: p[0])
    if not good.all():
        columns = {name: values[good] for name, values in columns.items()}
    return Checked(good, columns, problems, unknown)


# --------------------------------------------------------------------------------------
# Scoring (the API's model calls)
# --------------------------------------------------------------------------------------


@dataclass
class Scored:
    finite: np.ndarray  # bool per scored row: False = the model gave no finite output
    predictions: np.ndarray  # labels (str) or values (float64)
    probabilities: np.ndarray | None  # rows x classes, float64 (classifier)


def score(
    contract: Contract, model: LoadedModel, columns: dict[str, np.ndarray], rows: int
) -> Scored:
    feeds = model_inputs(contract, Batch(columns, rows))  # type: ignore[arg-type]
    if contract.regression:
        values = model.predict_values(feeds)
        return Scored(np.isfinite(values), values, None)
    labels, proba = model.predict(feeds)
    return Scored(np.isfinite(proba).all(axis=1), labels, proba)


# --------------------------------------------------------------------------------------
# Writers: a temporary file renamed into place on success
# --------------------------------------------------------------------------------------


def _temporary(path: Path, run_id: str) -> Path:
    return path.with_name(f".{path.name}.{run_id}.tmp")


def _arrow() -> Any:
    """pyarrow if installed (the `train` group; the serving image has none), else None."""
    try:
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet
    except ImportError:
        return None
    return pyarrow


def _decoded(dictionary: Any, decode: bool) -> Any:
    return dictionary.dictionary_decode() if decode else dictionary


class OutputWriter:
    """Appends chunks to a temporary CSV or Parquet file; `commit` renames it. Chunks are
    built as Arrow tables and written by pyarrow (CSV too: 10x faster than pandas'
    `to_csv`, floats in their shortest round-trip form); without pyarrow a CSV is written
    by pandas."""

    def __init__(self, path: Path, run_id: str, contract: Contract) -> None:
        self.path = path
        self.contract = contract
        self.format = file_format(path)
        self.temporary = _temporary(path, run_id)
        self.pa = _pyarrow() if self.format == "parquet" else _arrow()
        self.parquet: Any = None
        self.schema: Any = None
        self.handle: Any = None
        self.classes = list(contract.classes)
        self.sorted_classes = np.sort(np.asarray(self.classes, dtype=str))
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, request: str, kept: pd.DataFrame, scored: Scored) -> None:
        if self.pa is None:
            self._write_pandas(_output_frame(self.contract, request, kept, scored))
            return
        table = self._table(request, kept, scored)
        if self.schema is None:
            self.schema = table.schema
        elif not table.schema.equals(self.schema):
            try:
                table = table.cast(self.schema)
            except (self.pa.ArrowInvalid, self.pa.ArrowNotImplementedError, ValueError) as exc:
                raise BatchError(
                    f"the output's columns changed type between chunks ({exc})"
                ) from None
        if self.format == "parquet":
            if self.parquet is None:
                # Dictionary pages for the text columns only: tried on float columns (all
                # values distinct) they cost 4x the CPU of the whole write, and space.
                text = [
                    field.name
                    for field in self.schema
                    if self.pa.types.is_dictionary(field.type)
                    or self.pa.types.is_string(field.type)
                    or self.pa.types.is_large_string(field.type)
                ]
                self.parquet = self.pa.parquet.ParquetWriter(
                    self.temporary, self.schema, use_dictionary=text or False
                )
            self.parquet.write_table(table)
            return
        header = self.handle is None
        if header:
            self.handle = self.pa.OSFile(str(self.temporary), "wb")
        options = self.pa.csv.WriteOptions(include_header=header, quoting_style="needed")
        self.pa.csv.write_csv(table, self.handle, options)

    def _table(self, request: str, kept: pd.DataFrame, scored: Scored) -> Any:
        pa = self.pa
        rows = len(scored.predictions)
        # Repeated strings as dictionary columns (Parquet stores them once per page);
        # the CSV writer takes plain strings, decoded from the dictionary in C.
        arrays: dict[str, Any] = {
            "request_id": _decoded(
                pa.DictionaryArray.from_arrays(
                    pa.array(np.zeros(rows, dtype=np.int32)), pa.array([request])
                ),
                self.format == "csv",
            ),
            "row": pa.array(np.arange(rows, dtype=np.int64)),
        }
        for name in kept.columns:
            arrays[name] = pa.Array.from_pandas(kept[name])
        if self.contract.regression:
            arrays["prediction"] = pa.array(scored.predictions, pa.float64())
        else:
            arrays["prediction"] = self._labels(scored.predictions)
            assert scored.probabilities is not None
            for j, name in enumerate(self.classes):
                arrays[f"probability:{name}"] = pa.array(
                    np.ascontiguousarray(scored.probabilities[:, j])
                )
        return pa.table(arrays)

    def _labels(self, labels: np.ndarray) -> Any:
        """The predicted labels, as codes into the schema's classes when they all are."""
        pa = self.pa
        if len(labels) and self.sorted_classes.size:
            index = np.searchsorted(self.sorted_classes, labels)
            index = np.minimum(index, self.sorted_classes.size - 1)
            if (self.sorted_classes[index] == labels).all():
                dictionary = pa.DictionaryArray.from_arrays(
                    pa.array(index.astype(np.int32)), pa.array(self.sorted_classes.tolist())
                )
                return _decoded(dictionary, self.format == "csv")
        return pa.array(np.asarray(labels, dtype=object), pa.string())

    def _write_pandas(self, frame: pd.DataFrame) -> None:
        if self.handle is None:
            self.handle = self.temporary.open("w", newline="", encoding="utf-8")
            frame.to_csv(self.handle, index=False)
        else:
            frame.to_csv(self.handle, index=False, header=False)

    def empty(self, keep: Sequence[str]) -> None:
        """No row was scored: an output with the columns and no row."""
        if self.pa is None:
            columns = output_columns(self.contract, keep)
            self._write_pandas(
                pd.DataFrame({name: pd.Series([], dtype=object) for name in columns})
            )
            return
        empty = Scored(
            np.zeros(0, bool),
            np.zeros(0, np.float64 if self.contract.regression else object),
            None if self.contract.regression else np.zeros((0, len(self.classes))),
        )
        kept = pd.DataFrame({name: pd.Series([], dtype=object) for name in keep})
        self.write("", kept, empty)

    def _close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
        if self.parquet is not None:
            self.parquet.close()
            self.parquet = None

    def commit(self) -> None:
        self._close()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._close()
        self.temporary.unlink(missing_ok=True)


class RejectsWriter:
    """The refused rows, one line per problem: file, row, column, reason, value."""

    def __init__(self, path: Path, run_id: str) -> None:
        self.path = path
        self.temporary = _temporary(path, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = self.temporary.open("w", newline="", encoding="utf-8")
        self.writer = csv.writer(self.handle)
        self.writer.writerow(REJECT_COLUMNS)

    def write(self, file: Path, first_row: int, problems: list[tuple[int, str, str, Any]]) -> None:
        for row, column, reason, value in problems:
            shown = (
                ""
                if value is None or (isinstance(value, float) and math.isnan(value))
                else str(value)
            )
            self.writer.writerow(
                (str(file), first_row + row, column, reason, shown[:MAX_VALUE_CHARS])
            )

    def commit(self) -> None:
        self.handle.close()
        os.replace(self.temporary, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.handle.close()
        self.temporary.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


def output_columns(contract: Contract, keep: Sequence[str]) -> list[str]:
    names = ["request_id", "row", *keep, "prediction"]
    if not contract.regression:
        names += [f"probability:{c}" for c in contract.classes]
    return names


def _output_frame(
    contract: Contract, request: str, kept: pd.DataFrame, scored: Scored
) -> pd.DataFrame:
    rows = len(scored.predictions)
    data: dict[str, Any] = {
        "request_id": np.full(rows, request, dtype=object),
        "row": np.arange(rows, dtype=np.int64),
    }
    for name in kept.columns:
        data[name] = kept[name].to_numpy()
    data["prediction"] = scored.predictions
    if scored.probabilities is not None:
        for j, name in enumerate(contract.classes):
            data[f"probability:{name}"] = scored.probabilities[:, j]
    return pd.DataFrame(data, copy=False)


@dataclass
class _Chunk:
    """A chunk read and validated, its scoring running (or done) on the scoring thread."""

    number: int
    path: Path
    first_row: int  # of the chunk, in its file
    frame: pd.DataFrame
    checked: Checked
    scoring: Future[Scored] | None  # None: no valid row


def run_batch(
    inputs: Sequence[Path],
    output: Path,
    contract: Contract,
    model: LoadedModel,
    version: str,
    prediction_log: Any = None,
    config: BatchConfig | None = None,
) -> BatchResult:
    """Score every row of `inputs` into `output` (see the module docstring). Raises
    BatchError for bad input; the output appears only when the run succeeds.

    Pipelined: while onnxruntime scores chunk k on a second thread (it releases the
    GIL), this thread writes and logs chunk k-1 and reads and validates chunk k+1; at
    most two chunks are in memory, and they are written in order."""
    config = config or BatchConfig()
    run_id = config.run_id or new_run_id()
    keep = tuple(dict.fromkeys(config.keep))
    overlap = [name for name in keep if name in output_columns(contract, ())]
    if overlap:
        raise BatchError(f"--keep {overlap[0]!r}: the output has a column of that name already")
    check_columns(inputs, contract, keep)
    result = BatchResult(run_id, output, rejects_path(output), files=len(inputs))
    writer = OutputWriter(output, run_id, contract)
    rejects = RejectsWriter(result.rejects, run_id)
    started = time.perf_counter()
    wrote = False

    def finish(item: _Chunk) -> None:
        nonlocal wrote
        checked, frame, path = item.checked, item.frame, item.path
        rows = len(frame)
        scored = item.scoring.result() if item.scoring is not None else None
        good_rows = int(checked.good.sum())
        if scored is not None and not scored.finite.all():
            scored, good_rows = _drop_unscorable(checked, scored)
        bad = rows - good_rows
        if bad:
            rejects.write(path, item.first_row, checked.problems)
            result.bad_rows += bad
            for _, column, _, _ in checked.problems:
                name = column or "(model)"
                result.reasons[name] = result.reasons.get(name, 0) + 1
        if config.max_bad_rows is not None and result.bad_rows > config.max_bad_rows:
            first = _first_problem(path, item.first_row, checked.problems)
            raise BatchError(
                f"{result.bad_rows} refused row(s), more than --max-bad-rows "
                f"{config.max_bad_rows} (first: {first}); every reason is in "
                f"{result.rejects}; nothing was written to {output}"
            )
        if good_rows and scored is not None:
            request = request_id(run_id, item.number)
            kept = frame[list(keep)]
            if good_rows < rows:
                kept = kept.loc[checked.good]
            writer.write(request, kept.reset_index(drop=True), scored)
            wrote = True
            if prediction_log is not None:
                _log_chunk(prediction_log, contract, checked.columns, scored, version, request)
            result.requests += 1
            result.rows_scored += good_rows
        result.rows_read += rows
        elapsed = time.perf_counter() - started
        logger.info(
            "chunk %d (%s, rows %d-%d): %d scored, %d refused; %d rows done, %.0f rows/s",
            item.number, path.name, item.first_row, item.first_row + rows - 1, good_rows, bad,
            result.rows_read, result.rows_read / elapsed if elapsed > 0 else 0.0,
        )  # fmt: skip

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="batch-score") as executor:
            pending: _Chunk | None = None
            number = 0
            for path in inputs:
                text = file_format(path) == "csv"
                first_row = 0
                for frame in read_chunks(path, contract, keep, config.chunk_rows):
                    checked = validate_chunk(contract, frame, text)
                    result.unknown_categories += checked.unknown
                    good_rows = int(checked.good.sum())
                    scoring = (
                        executor.submit(score, contract, model, checked.columns, good_rows)
                        if good_rows
                        else None
                    )
                    if pending is not None:
                        finish(pending)
                    pending = _Chunk(number, path, first_row, frame, checked, scoring)
                    first_row += len(frame)
                    number += 1
            if pending is not None:
                finish(pending)
        if not wrote:
            writer.empty(keep)
        if prediction_log is not None:
            flush = getattr(prediction_log, "flush", None)
            if flush is not None and not flush(LOG_WAIT_SECONDS):
                logger.warning(
                    "prediction log: not every chunk was written within %.0f s", LOG_WAIT_SECONDS
                )
        writer.commit()
    except BaseException:
        writer.abort()
        if result.bad_rows:  # why the run stopped: kept for the user to read
            rejects.commit()
        else:
            rejects.abort()
        raise
    rejects.commit()
    result.seconds = time.perf_counter() - started
    return result


def _drop_unscorable(checked: Checked, scored: Scored) -> tuple[Scored, int]:
    """Rows the model gives no finite output for (the API answers 422): refused."""
    positions = np.flatnonzero(checked.good)
    for i in np.flatnonzero(~scored.finite):
        reason = "the model gives no finite output for this row (extreme values?)"
        checked.problems.append((int(positions[i]), "", reason, None))
    checked.problems.sort(key=lambda p: p[0])
    finite = scored.finite
    checked.good[positions[~finite]] = False
    checked.columns = {name: values[finite] for name, values in checked.columns.items()}
    probabilities = None if scored.probabilities is None else scored.probabilities[finite]
    return Scored(finite[finite], scored.predictions[finite], probabilities), int(finite.sum())


def _first_problem(path: Path, first_row: int, problems: list[tuple[int, str, str, Any]]) -> str:
    if not problems:
        return "see the rejects file"
    row, column, reason, _ = problems[0]
    return f"{path} row {first_row + row}: {column + ': ' if column else ''}{reason}"


def _log_chunk(
    prediction_log: Any,
    contract: Contract,
    columns: dict[str, np.ndarray],
    scored: Scored,
    version: str,
    request: str,
) -> None:
    """One chunk as one request of the log, like an API request. The log's writer
    encodes it on its own thread; waiting for the previous chunk first keeps at most one
    chunk queued (memory stays flat, and the log's bounded queue never drops one)."""
    flush = getattr(prediction_log, "flush", None)
    if flush is not None and not flush(LOG_WAIT_SECONDS):
        logger.warning("prediction log: the writer is behind by more than %.0f s", LOG_WAIT_SECONDS)
    features = {
        name: values if values.dtype.kind == "f" else values.tolist()
        for name, values in columns.items()
    }
    queued = prediction_log.log(
        features,
        scored.predictions,
        scored.probabilities,
        version,
        request,
        classes=() if contract.regression else contract.classes,
        timestamp=time.time(),
    )
    if queued is False:
        logger.warning(
            "prediction log: request %s was not queued (see the log's warnings)", request
        )
