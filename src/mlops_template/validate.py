"""The data contract: infer `data/schema.json` and check the raw data against the rules.

`check_data` is pure: DataFrame + params in, a `ValidationResult` (every check, passed or
not, with the column and rule it concerns) out. The CLI writes the reports and exits
non-zero on failure, so a bad dataset never reaches training.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_template.config import DataParams, SplitParams, ValidateParams
from mlops_template.data import frame_hash, held_out_rows

SCHEMA_VERSION = 1
# Columns with more distinct values than this share of rows look like identifiers, not
# features: the leakage check skips them (they "predict" anything by memorising rows).
ID_LIKE_UNIQUE_FRACTION = 0.5
LEAKAGE_SAMPLE_ROWS = 100_000
LEAKAGE_BINS = 1024
# A column with at least this share of distinct values (per row) is fine-grained: ties
# between independent records are rare there, so a value shared only by identical rows
# marks them as copies (count_test_copies). Whole-table doubling still leaves 0.5.
FINE_GRAINED_MIN_DISTINCT = 0.2
# Date recognition looks at this many distinct values of a text column, and guesses the
# format from the first DATE_FORMAT_GUESSES of them (the most common guess wins).
DATE_SAMPLE_VALUES = 1000
DATE_FORMAT_GUESSES = 20
# "customer_id", "id", "ID", "order-id", "id_2", "PassengerId", "userID"; not "paid", "valid".
ID_NAME = re.compile(r"(?:^|[^A-Za-z])(?:id|ID|Id)$|^(?:id|ID|Id)(?:[^A-Za-z]|$)|[a-z](?:Id|ID)$")


@dataclass(frozen=True)
class Check:
    rule: str
    passed: bool
    detail: str
    column: str | None = None


@dataclass
class ValidationResult:
    checks: list[Check] = field(default_factory=list)
    # Findings worth a look that do not fail validation (duplicates within the table,
    # id-like integers, date columns left out of the features).
    warnings: list[Check] = field(default_factory=list)
    rows: int = 0
    columns: int = 0

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def add(self, rule: str, passed: bool, detail: str, column: str | None = None) -> None:
        self.checks.append(Check(rule, bool(passed), detail, column))

    def warn(self, rule: str, detail: str, column: str | None = None) -> None:
        self.warnings.append(Check(rule, False, detail, column))

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "rows": self.rows,
            "columns": self.columns,
            "failures": [asdict(c) for c in self.failures],
            "warnings": [asdict(c) for c in self.warnings],
            "checks": [asdict(c) for c in self.checks],
        }


def failure_message(check: Check) -> str:
    where = f"column {check.column!r}" if check.column else "dataset"
    return f"{where} fails rule {check.rule}: {check.detail}"


def warning_message(check: Check) -> str:
    where = f"column {check.column!r}" if check.column else "dataset"
    return f"{where} warns on rule {check.rule}: {check.detail}"


def parses_as_number(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").notna()


def feature_columns(
    frame: pd.DataFrame, params: DataParams, dates: dict[str, str] | None = None
) -> list[str]:
    """The model's inputs: every column but the target, id, dropped and date columns."""
    excluded = {params.target, *params.id_columns, *params.drop_columns, *(dates or {})}
    return [c for c in frame.columns if c not in excluded]


def date_format(values: pd.Series, min_fraction: float) -> str | None:
    """The date format of a column whose values are dates ("timestamp" for a datetime
    column, e.g. from Parquet), else None.

    Text counts as dates when a format guessed from its first values (one with a year and
    a month: "2020" alone is a number, "12:30" a time) parses at least `min_fraction` of
    up to DATE_SAMPLE_VALUES distinct values. Without this, a date column looks like
    "distinct text" and fails validate.max_categorical_levels, or becomes a categorical
    feature whose every future value is unknown.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        return "timestamp"
    if is_numeric(values) or pd.api.types.is_bool_dtype(values):
        return None
    distinct = pd.Series(values.dropna().astype(str).unique()[:DATE_SAMPLE_VALUES], dtype=object)
    if distinct.empty or parses_as_number(distinct).mean() >= 0.5:
        return None
    from pandas.tseries.api import guess_datetime_format

    with warnings.catch_warnings():  # "dayfirst" hints: every guess is tried below anyway
        warnings.simplefilter("ignore", UserWarning)
        guesses = {guess_datetime_format(v) for v in distinct.head(DATE_FORMAT_GUESSES)}
    formats = sorted(
        g
        for g in guesses
        if g and ("%Y" in g or "%y" in g) and ("%m" in g or "%b" in g or "%B" in g)
    )
    # "01/02/2020" guesses month-first, "13/02/2020" day-first: keep the one that parses most
    best, best_share = None, 0.0
    for fmt in formats:
        share = float(pd.to_datetime(distinct, format=fmt, errors="coerce").notna().mean())
        if share > best_share:
            best, best_share = fmt, share
    return best if best_share >= min_fraction else None


def date_columns(frame: pd.DataFrame, data: DataParams, rules: ValidateParams) -> dict[str, str]:
    """{column: format} of the would-be feature columns that hold dates."""
    found = {}
    for column in feature_columns(frame, data):
        fmt = date_format(frame[column], rules.numeric_parse_min_fraction)
        if fmt is not None:
            found[column] = fmt
    return found


def id_like_reason(values: pd.Series, name: str, min_distinct_fraction: float) -> str | None:
    """Why an integer column looks like a row identifier, or None.

    Nearly all values distinct, and either contiguous (filling their range: 1..n), sorted
    in row order, or named like an id. A warning, not a failure: a true feature can look
    like this (the user keeps it by ignoring the warning), while the harmful case, an id
    whose order follows the label, already fails the leakage rule.
    """
    if not is_numeric(values):
        return None
    present = values.dropna().to_numpy(dtype=np.float64)
    if len(present) < 2 or not np.all(np.isfinite(present)) or np.any(present % 1):
        return None
    distinct = len(np.unique(present))
    if distinct < min_distinct_fraction * len(present):
        return None
    span = present.max() - present.min() + 1
    steps = np.diff(present)
    if distinct >= min_distinct_fraction * span:
        how = (
            f"contiguous: {distinct} distinct values fill {present.min():.0f}..{present.max():.0f}"
        )
    elif max((steps > 0).mean(), (steps < 0).mean()) >= min_distinct_fraction:
        how = f"{distinct} distinct values, sorted in row order"
    elif ID_NAME.search(name):
        how = f"{distinct} distinct values and named like an id"
    else:
        return None
    return how


def row_hashes(frame: pd.DataFrame, features: list[str], target: str) -> np.ndarray:
    """A 64-bit hash per row of what the model sees (features and label): ~10x faster
    than DataFrame.duplicated on wide frames."""
    return pd.util.hash_pandas_object(frame[[*features, target]], index=False).to_numpy()


def count_test_copies(
    frame: pd.DataFrame,
    features: list[str],
    target: str,
    split: SplitParams,
    row_hash: np.ndarray | None = None,
    task: str = "classification",
) -> tuple[int, int, int]:
    """(test rows, test rows copying a training row beyond chance, test rows copying a
    training row made of common values only), on the split the `split` stage will make.

    A copy: equal to a training row on every feature and the target. Identical rows are
    legitimate where few columns take few values (Titanic, Arrests: ~45 % of rows), so a
    copy counts only when it holds a value that no row outside its own identical copies
    has, in a fine-grained column (distinct values for at least FINE_GRAINED_MIN_DISTINCT
    of the rows: a measurement, a name, where independent records rarely tie; a missing
    value never counts). Chance does not explain such copies: whatever the columns'
    dependence, two independent rows are equal at most as often as they tie on that
    column, and the rest of the table never takes the value. A coarse column cannot tell:
    a level seen only in identical rows (x = 1.0 always with c = "b") is common in small
    categorical tables. An expected chance rate from the product of column cardinalities
    or from permuted columns would assume independent columns, which correlated,
    low-dimensional data breaks, and would fail exactly the tables this is meant to pass.
    """
    is_test = held_out_rows(frame, target, split, task)
    if row_hash is None:  # `check_data` passes the hashes it computed for duplicates
        row_hash = row_hashes(frame, features, target)
    copied = np.isin(row_hash[is_test], row_hash[~is_test])
    if not copied.any():
        return int(is_test.sum()), 0, 0
    codes = pd.factorize(row_hash)[0]
    multiplicity = np.bincount(codes)[codes]
    distinctive = np.zeros(len(frame), dtype=bool)
    for column in features:
        value_codes, levels = pd.factorize(frame[column])  # missing: -1
        if len(levels) < FINE_GRAINED_MIN_DISTINCT * len(frame):
            continue
        counts = np.bincount(value_codes[value_codes >= 0], minlength=len(levels))
        own = np.where(value_codes >= 0, counts[value_codes.clip(0)], 0) == multiplicity
        distinctive |= own & (value_codes >= 0)
    beyond_chance = copied & distinctive[is_test]
    return int(is_test.sum()), int(beyond_chance.sum()), int((copied & ~beyond_chance).sum())


def is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def single_column_score(values: pd.Series, target: pd.Series, bins: int = LEAKAGE_BINS) -> float:
    """How well one column alone predicts the target: balanced accuracy, 0..1.

    Numeric: the best step function of the value with at most two steps per class (an
    exact dynamic programme over up to `bins` ordered quantile bins). It cannot memorise
    rows, yet finds a label code in any order ("low"=0, "high"=1, "mid"=2) or the label
    plus noise. Categorical: each row is predicted by the majority class of the *other*
    rows with its value (leave-one-out), so many small categories do not look predictive.
    Rows where the column is missing are left out; a class seen only there scores zero.
    numpy/pandas only, so the validate stage does not pay for importing scikit-learn.
    """
    codes, classes = pd.factorize(target.astype(str))
    return _column_score(values, codes, len(classes), bins)


def _column_score(values: pd.Series, target_codes: np.ndarray, k: int, bins: int) -> float:
    mask = values.notna().to_numpy()
    if not mask.any() or k < 2:
        return 0.0
    y = target_codes[mask]
    counts = np.bincount(y, minlength=k)
    # sum of these weights over the correctly predicted rows = balanced accuracy
    weight = np.divide(1.0, k * counts, out=np.zeros(k), where=counts > 0)[y]
    x = values[mask]
    if is_numeric(x):
        keys = _ordered_bins(x.to_numpy(dtype=np.float64), bins)
        return _best_step_function(keys, y, weight, k, max_steps=2 * k)
    codes = pd.factorize(x.astype(str))[0]
    return _leave_one_out_majority(codes, y, weight, k)


def _ordered_bins(x: np.ndarray, bins: int) -> np.ndarray:
    """Bin index of each value, in value order; equal values share a bin."""
    unique, inverse = np.unique(x, return_inverse=True)
    if len(unique) <= bins:
        return inverse.reshape(-1)
    edges = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, x, side="right")


def _best_step_function(
    keys: np.ndarray, y: np.ndarray, weight: np.ndarray, k: int, max_steps: int
) -> float:
    """Largest weighted accuracy of cutting the ordered bins into at most `max_steps`
    intervals that each predict one class (max-plus dynamic programme)."""
    n_bins = int(keys.max()) + 1
    table = np.zeros((n_bins, k))
    np.add.at(table, (keys, y), weight)
    prefix = np.vstack([np.zeros(k), np.cumsum(table, axis=0)])  # (n_bins + 1, k)
    # gain[i, j]: best weighted hits of one interval covering bins i..j-1
    gain = np.full((n_bins + 1, n_bins + 1), -np.inf)
    for c in range(k):
        np.maximum(gain, prefix[None, :, c] - prefix[:, None, c], out=gain)
    gain[np.tril_indices(n_bins + 1, -1)] = -np.inf
    best = gain[0].copy()
    for _ in range(max_steps - 1):
        best = np.max(best[:, None] + gain, axis=0)
    return float(min(best[-1], 1.0))


def _leave_one_out_majority(codes: np.ndarray, y: np.ndarray, weight: np.ndarray, k: int) -> float:
    table = np.zeros((int(codes.max()) + 1, k))
    np.add.at(table, (codes, y), 1.0)
    others = table[codes]
    others[np.arange(len(y)), y] -= 1.0
    fallback = int(np.argmax(np.bincount(y, minlength=k)))
    predicted = np.where(others.sum(axis=1) > 0, np.argmax(others, axis=1), fallback)
    return float(weight[predicted == y].sum())


def check_data(
    frame: pd.DataFrame,
    data: DataParams,
    rules: ValidateParams,
    split: SplitParams | None = None,
) -> ValidationResult:
    """Every rule of the data contract, in order; later rules run only when they can.

    `split` (params.split, defaults when None) is the split the copies between train and
    test are measured on: the same seeded split the `split` stage makes afterwards.
    """
    split = split if split is not None else SplitParams()
    result = ValidationResult(rows=len(frame), columns=frame.shape[1])
    target = data.target

    if frame.shape[1] == 0 or len(frame) == 0:
        result.add(
            "not_empty", False, f"the table has {len(frame)} rows and {frame.shape[1]} columns"
        )
        return result
    result.add("not_empty", True, f"{len(frame)} rows x {frame.shape[1]} columns")
    result.add(
        "min_rows",
        len(frame) >= rules.min_rows,
        f"{len(frame)} rows (validate.min_rows: {rules.min_rows})",
    )

    if target not in frame.columns:
        close = [c for c in frame.columns if c.lower() == target.lower()]
        hint = (
            f"; did you mean {close[0]!r}?"
            if close
            else f"; columns are {list(frame.columns)[:20]}"
        )
        result.add("target_present", False, f"data.target {target!r} is not a column{hint}", target)
        return result
    result.add("target_present", True, "present", target)

    for key, columns in (
        ("data.id_columns", data.id_columns),
        ("data.drop_columns", data.drop_columns),
    ):
        for column in columns:
            if column not in frame.columns:
                result.add(
                    "listed_column_present",
                    False,
                    f"{key} names {column!r}, which is not a column",
                    column,
                )

    labels = frame[target]
    n_missing_target = int(labels.isna().sum())
    result.add(
        "target_complete",
        n_missing_target == 0,
        f"{n_missing_target} rows have no target value",
        target,
    )
    task, _ = infer_task(labels.dropna(), data, rules)
    looks_like_regression = task == "regression"
    _check_target_kind(labels.dropna(), data, rules, result)
    # the target fits the task (a quantity refused as classes, a text target refused as
    # a number: checked above); only then are classes, copies and leakage measured
    many, _ = looks_like_quantity(labels.dropna(), rules)
    regression_ok = looks_like_regression and is_numeric(labels)
    fits = regression_ok or (not looks_like_regression and not many)
    counts = labels.dropna().astype(str).value_counts()
    if fits and not looks_like_regression:
        result.add(
            "min_classes",
            len(counts) >= 2,
            f"{len(counts)} class(es): {dict(counts.head(10))} (at least 2 are needed)",
            target,
        )
    if len(counts) >= 2 and fits and not looks_like_regression:
        smallest = counts.idxmin()
        result.add(
            "min_class_rows",
            counts.min() >= 2,
            f"class {smallest!r} has {counts.min()} row(s); a stratified split needs at least 2",
            target,
        )

    dates = date_columns(frame, data, rules)
    for column, fmt in dates.items():
        result.warn(
            "datetime",
            f"dates ({'timestamps' if fmt == 'timestamp' else f'format {fmt!r}'}): kept out "
            f"of the features (data.datetime_features: {data.datetime_features})",
            column,
        )
    features = feature_columns(frame, data, dates)
    if not features:
        result.add("has_features", False, "no feature columns remain after id/drop/date columns")
        return result

    for column in features:
        values = frame[column]
        n_null = int(values.isna().sum())
        if n_null == len(values):
            result.add("all_null", False, "every value is missing", column)
            continue
        if not is_numeric(values) and not pd.api.types.is_bool_dtype(values):
            # each distinct text once, weighted by its count: fast on millions of rows
            counts = values.dropna().astype(str).value_counts(sort=False)
            parsed = parses_as_number(pd.Series(counts.index, dtype=object)).to_numpy()
            n_present = int(counts.sum())
            n_bad = int(counts.to_numpy()[~parsed].sum())
            share = 1 - n_bad / n_present
            if share >= rules.numeric_parse_min_fraction and n_bad:
                bad = counts.index[~parsed][:3].tolist()
                result.add(
                    "numeric_parse",
                    False,
                    f"{n_bad} of {n_present} values do not parse as numbers "
                    f"(e.g. {bad}) while {share:.0%} do",
                    column,
                )
                continue
            levels = len(counts)
            if levels > rules.max_categorical_levels:
                result.add(
                    "categorical_levels",
                    False,
                    f"{levels} distinct text values (validate.max_categorical_levels: "
                    f"{rules.max_categorical_levels}); list it in data.id_columns or "
                    "data.drop_columns if it is an identifier or free text",
                    column,
                )
                continue
        if is_numeric(values):
            n_infinite = int(np.isinf(values.to_numpy(dtype=np.float64, na_value=np.nan)).sum())
            if n_infinite:
                result.add(
                    "finite",
                    False,
                    f"{n_infinite} infinite value(s); use empty for missing",
                    column,
                )
                continue
            id_like = id_like_reason(values, column, rules.id_like_min_distinct_fraction)
            if id_like:
                result.warn(
                    "id_like",
                    f"integer column that looks like a row identifier ({id_like}; "
                    f"validate.id_like_min_distinct_fraction: "
                    f"{rules.id_like_min_distinct_fraction}); it is used as a feature unless "
                    "you list it in data.id_columns",
                    column,
                )
        fraction = n_null / len(values)
        result.add(
            "missing_fraction",
            fraction <= rules.max_missing_fraction,
            f"{fraction:.1%} missing (validate.max_missing_fraction: {rules.max_missing_fraction})",
            column,
        )

    # Rows that repeat what the model sees (features and label): id columns differ
    # between copies of the same record, so they do not count. Only a warning: in
    # low-dimensional data identical rows are legitimate; what fails is test_copies.
    row_hash = row_hashes(frame, features, target)
    duplicates = float(pd.Series(row_hash).duplicated().mean())
    detail = (
        f"{duplicates:.1%} duplicate rows, ignoring id and dropped columns "
        f"(validate.max_duplicate_fraction: {rules.max_duplicate_fraction}, a warning only)"
    )
    if duplicates <= rules.max_duplicate_fraction:
        result.add("duplicate_fraction", True, detail)
    else:
        result.warn("duplicate_fraction", detail)

    if n_missing_target == 0 and fits:
        _check_test_copies(frame, features, target, rules, split, row_hash, result, task)
    if len(counts) >= 2 and n_missing_target == 0 and not looks_like_regression and fits:
        _check_leakage(frame, features, target, rules, result)
    if n_missing_target == 0 and regression_ok:
        _check_leakage(frame, features, target, rules, result, "regression")
    return result


def looks_like_quantity(labels: pd.Series, rules: ValidateParams) -> tuple[bool, int]:
    """(a numeric target with many distinct values, its distinct values): a quantity to
    predict, where every value as a class would be a class of one or two rows."""
    if not is_numeric(labels):
        return False, int(labels.nunique())
    distinct = int(labels.nunique())
    many = (
        distinct > rules.regression_min_distinct
        and distinct > rules.regression_min_distinct_fraction * len(labels)
    )
    return many, distinct


def infer_task(labels: pd.Series, data: DataParams, rules: ValidateParams) -> tuple[str, str]:
    """(task, reason): "classification" or "regression", as data.task says or, when it is
    "auto", as the target looks (a numeric target with many distinct values is a
    quantity). The reason says why and how to choose the other task."""
    many, distinct = looks_like_quantity(labels, rules)
    thresholds = (
        f"validate.regression_min_distinct: {rules.regression_min_distinct}, "
        f"validate.regression_min_distinct_fraction: {rules.regression_min_distinct_fraction}"
    )
    kind = "numeric" if is_numeric(labels) else "non-numeric"
    if data.task != "auto":
        return (
            data.task,
            f"data.task: {data.task} (target {data.target!r}: {distinct} distinct {kind} values)",
        )
    if many:
        return "regression", (
            f"data.task: auto and target {data.target!r} is numeric with {distinct} distinct "
            f"values ({thresholds}): regression; set data.task: classification to treat "
            "each value as a class"
        )
    return "classification", (
        f"data.task: auto and target {data.target!r} has {distinct} distinct {kind} values "
        f"({thresholds}): classification; set data.task: regression to predict it as a number"
    )


def _check_target_kind(
    labels: pd.Series, data: DataParams, rules: ValidateParams, result: ValidationResult
) -> None:
    """data.task: classification on a quantity fails (every value would become a class of
    one or two rows); data.task: regression needs a numeric target."""
    target = data.target
    many, distinct = looks_like_quantity(labels, rules)
    if data.task == "regression":
        result.add(
            "regression_target",
            is_numeric(labels),
            f"target {target!r} ({labels.dtype}) must be numeric for data.task: regression",
            target,
        )
        return
    if not is_numeric(labels):
        return
    refused = many and data.task == "classification"
    detail = (
        f"target {target!r} has {distinct} distinct numeric values"
        + (": looks like regression; set data.task: regression (or auto)" if refused else "")
        + f" (validate.regression_min_distinct: {rules.regression_min_distinct}, "
        f"validate.regression_min_distinct_fraction: {rules.regression_min_distinct_fraction})"
    )
    result.add("classification_target", not refused, detail, target)


def _check_test_copies(
    frame: pd.DataFrame,
    features: list[str],
    target: str,
    rules: ValidateParams,
    split: SplitParams,
    row_hash: np.ndarray,
    result: ValidationResult,
    task: str = "classification",
) -> None:
    test_rows, copies, common = count_test_copies(frame, features, target, split, row_hash, task)
    if test_rows == 0:
        return
    share = copies / test_rows
    result.add(
        "test_copies",
        share <= rules.max_test_copy_fraction,
        f"{copies} of {test_rows} test rows ({share:.1%}) are exact copies of training rows "
        "holding a value no other row has (validate.max_test_copy_fraction: "
        f"{rules.max_test_copy_fraction}); {common} more copy only common values, as "
        "identical rows of low-dimensional data do, and are not counted",
    )


# One feature scored against the target: (score, what it measures), or None to skip it.
LeakageScore = Callable[[pd.Series], tuple[float, str] | None]


def _check_leakage(
    frame: pd.DataFrame,
    features: list[str],
    target: str,
    rules: ValidateParams,
    result: ValidationResult,
    task: str = "classification",
) -> None:
    """A feature that alone predicts the target at least validate.leakage_max_score well
    (it equals or trivially encodes the target), on a seeded sample of the rows."""
    failed = {c.column for c in result.failures}
    sample = frame
    if len(frame) > LEAKAGE_SAMPLE_ROWS:
        sample = frame.sample(LEAKAGE_SAMPLE_ROWS, random_state=0)
    score_of = _value_leakage if task == "regression" else _class_leakage
    score_column = score_of(sample[target])
    for column in features:
        found = None if column in failed else score_column(sample[column])
        if found is None:
            continue
        score, measure = found
        if np.isinf(score):
            result.add("leakage", False, measure, column)
            continue
        result.add(
            "leakage",
            score < rules.leakage_max_score,
            f"alone predicts the target with {measure} {score:.3f} "
            f"(validate.leakage_max_score: {rules.leakage_max_score})",
            column,
        )


def _class_leakage(target: pd.Series) -> LeakageScore:
    """Classes: the balanced accuracy of predicting the class from the column's bins or
    levels alone (a text column equal to the target is leakage outright)."""
    labels = target.astype(str)
    codes, classes = pd.factorize(labels)

    def score(values: pd.Series) -> tuple[float, str] | None:
        if not is_numeric(values):
            if values.astype(str).equals(labels):
                return np.inf, "equals the target"
            if values.nunique() > ID_LIKE_UNIQUE_FRACTION * len(values):
                return None
        return _column_score(values, codes, len(classes), LEAKAGE_BINS), "balanced accuracy"

    return score


def _value_leakage(target: pd.Series) -> LeakageScore:
    """A number: the size of a numeric column's rank correlation with it."""
    truth = target.to_numpy(dtype=np.float64)

    def score(values: pd.Series) -> tuple[float, str] | None:
        if not is_numeric(values):
            return None
        x = values.to_numpy(dtype=np.float64, na_value=np.nan)
        present = ~np.isnan(x)
        if present.sum() < 3:
            return None
        rx, ry = _ranks(x[present]), _ranks(truth[present])
        if np.std(rx) == 0 or np.std(ry) == 0:
            return None
        return float(abs(np.corrcoef(rx, ry)[0, 1])), "|rank correlation|"

    return score


def _ranks(values: np.ndarray) -> np.ndarray:
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)
    return (upper - (counts - 1) / 2.0)[inverse.reshape(-1)]


def infer_schema(
    frame: pd.DataFrame, data: DataParams, rules: ValidateParams | None = None
) -> dict[str, Any]:
    """The data contract the model, the serving API and the drift monitor all rely on.

    `rules` (params.validate, defaults when None) decide which columns are dates.
    """
    dates = date_columns(frame, data, rules if rules is not None else ValidateParams())
    features = []
    for column in feature_columns(frame, data, dates):
        values = frame[column]
        entry: dict[str, Any] = {
            "name": column,
            "dtype": str(values.dtype),
            "nullable": bool(values.isna().any()),
            "missing_fraction": round(float(values.isna().mean()), 6),
        }
        if is_numeric(values):
            numbers = values.astype(float)
            entry |= {
                "kind": "numeric",
                "min": _finite(numbers.min()),
                "max": _finite(numbers.max()),
                "mean": _finite(numbers.mean()),
                "std": _finite(numbers.std()),
                "integer": bool(pd.api.types.is_integer_dtype(values)),
            }
        else:
            entry |= {
                "kind": "categorical",
                "levels": sorted(values.dropna().astype(str).unique().tolist()),
            }
        features.append(entry)
    task, _ = infer_task(frame[data.target].dropna(), data, rules or ValidateParams())
    if task == "regression":
        numbers = frame[data.target].astype(float)
        target_info: dict[str, Any] = {
            "task": "regression",
            # what predictions are compared with (drift of predictions, the model card)
            "target_stats": {
                "min": _finite(numbers.min()),
                "max": _finite(numbers.max()),
                "mean": _finite(numbers.mean()),
                "std": _finite(numbers.std()),
                "has_zero": bool((numbers == 0).any()),
            },
        }
    else:
        labels = frame[data.target].astype(str)
        counts = labels.value_counts().sort_index()
        classes = counts.index.tolist()
        target_info = {
            "task": "binary" if len(classes) == 2 else "multiclass",
            "classes": classes,
            "class_counts": {k: int(v) for k, v in counts.items()},
        }
    return {
        "version": SCHEMA_VERSION,
        "target": data.target,
        **target_info,
        "features": features,
        "id_columns": list(data.id_columns),
        "dropped_columns": list(data.drop_columns),
        # recognised as dates and left out of the features (data.datetime_features: drop)
        "datetime_columns": [{"name": name, "format": fmt} for name, fmt in dates.items()],
        "rows": len(frame),
        "dataset_hash": frame_hash(frame),
    }


def _finite(value: Any) -> float | None:
    value = float(value)
    return round(value, 10) if np.isfinite(value) else None


def render_validation_markdown(result: ValidationResult, source: str) -> str:
    status = "PASSED" if result.passed else "FAILED"
    lines = [
        f"# Data validation: {status}",
        "",
        f"Source: `{source}` · {result.rows} rows · {result.columns} columns",
        "",
    ]
    if result.failures:
        lines += ["## Failures", ""]
        lines += [f"- **{c.rule}** ({c.column or 'dataset'}): {c.detail}" for c in result.failures]
        lines.append("")
    if result.warnings:
        lines += ["## Warnings (do not fail validation)", ""]
        lines += [f"- **{c.rule}** ({c.column or 'dataset'}): {c.detail}" for c in result.warnings]
        lines.append("")
    lines += ["## All checks", "", "| rule | column | result | detail |", "|---|---|---|---|"]
    for c in result.checks:
        detail = c.detail.replace("|", "\\|")
        lines.append(
            f"| {c.rule} | {c.column or '—'} | {'pass' if c.passed else '**FAIL**'} | {detail} |"
        )
    return "\n".join(lines) + "\n"
