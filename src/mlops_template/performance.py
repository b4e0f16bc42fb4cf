"""Live performance: delayed ground-truth labels joined to the served predictions.

How labels come back: every answer of the API carries its `request_id` (the client's
`X-Request-ID` header, or one the server made); row N of that request (0-based, in the
order sent) is the prediction `(request_id, N)`. A client sends labels back as a CSV or
Parquet file with the columns `request_id`, `row` (optional: 0, for one-row requests)
and `label` (or the target's own column name, data.target), and runs
`python -m mlops_template monitor labels --file FILE`.

- Labels are stored once per (request_id, row) in the prediction log's database (table
  `labels`): the same label sent again is a duplicate (ignored, counted); a different
  label for a row that has one is a conflict (refused, counted, the first one stays).
- `monitor performance` joins them to the logged predictions: a key the log holds more
  than once (a client that reused a request id) is ambiguous and left out, so every
  label counts exactly once, against the one prediction it belongs to.
- Per model version and time window: the live metrics (the same definitions as the
  test set's, metrics.py) with percentile-bootstrap confidence intervals, against the
  version's own test-set metrics (its registration tag). An alarm is raised when the
  whole interval is worse than the test-set value by more than
  `monitor.performance.max_drop` (direction from the metric); a window with fewer than
  `min_labels` labelled rows gets no verdict.

Pure functions first; the SQLite I/O of the label table at the end.
"""

from __future__ import annotations

import math
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_template import pglog
from mlops_template.metrics import HIGHER_IS_BETTER, LOG_LOSS_FLOOR
from mlops_template.predlog import (
    MODEL_VERSION,
    PREDICTION,
    PROBABILITY_PREFIX,
    REQUEST_ID,
    ROW,
    TIMESTAMP,
)

_EPS = float(np.finfo(np.float64).eps)
LABEL = "label"
KEY = ["request_id", "row"]


class LabelError(ValueError):
    """A labels file that cannot be used (the message names the column or value)."""


# ----------------------------------------------------------------- labels file


def normalise_labels(
    frame: pd.DataFrame, target: str, task: str, classes: Sequence[str] | None = None
) -> pd.DataFrame:
    """request_id (str), row (int >= 0), label (str; a float for regression) from a
    labels file; refuses a missing column, an empty id, a bad row, a label that is not a
    number (regression) or not one of `classes` (classification)."""
    columns = {str(c): c for c in frame.columns}
    if "request_id" not in columns:
        raise LabelError(f"labels file: no 'request_id' column (columns: {list(columns)[:20]})")
    label_column = LABEL if LABEL in columns else target if target in columns else None
    if label_column is None:
        raise LabelError(
            f"labels file: no label column: name it 'label' or {target!r} (data.target)"
        )
    ids = frame[columns["request_id"]]
    if ids.isna().any() or (ids.astype(str).str.strip() == "").any():
        first = int(np.flatnonzero(ids.isna() | (ids.astype(str).str.strip() == ""))[0])
        raise LabelError(f"labels file row {first + 1}: request_id is empty")
    if "row" in columns:
        rows = pd.to_numeric(frame[columns["row"]], errors="coerce")
        bad = rows.isna() | (rows < 0) | (rows != rows.round())
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise LabelError(
                f"labels file row {first + 1}: row {_shown(frame[columns['row']].iloc[first])} "
                "is not a row number (0, 1, ... within the request)"
            )
        rows = rows.astype(np.int64)
    else:
        rows = pd.Series(np.zeros(len(frame), dtype=np.int64))
    labels = frame[columns[label_column]]
    if labels.isna().any():
        first = int(np.flatnonzero(labels.isna())[0])
        raise LabelError(f"labels file row {first + 1}: {label_column} is empty")
    if task == "regression":
        values = pd.to_numeric(labels, errors="coerce")
        if values.isna().any() or not np.isfinite(values.to_numpy(dtype=float)).all():
            first = int(np.flatnonzero(~np.isfinite(values.to_numpy(dtype=float)))[0])
            raise LabelError(
                f"labels file row {first + 1}: {label_column} {_shown(labels.iloc[first])} "
                "is not a number (the target is a regression one)"
            )
        label_values: pd.Series = values.astype(float)
    else:
        label_values = labels.map(_class_name)
        if classes is not None:
            unknown = ~label_values.isin([str(c) for c in classes])
            if unknown.any():
                first = int(np.flatnonzero(unknown)[0])
                raise LabelError(
                    f"labels file row {first + 1}: {label_column} {_shown(labels.iloc[first])} is "
                    f"not a class of the model ({list(classes)})"
                )
    out = pd.DataFrame(
        {
            "request_id": ids.astype(str).to_numpy(),
            "row": rows.to_numpy(),
            LABEL: label_values.to_numpy(),
        }
    )
    repeated = out.duplicated(KEY, keep=False)
    if repeated.any():
        clash = out[repeated].groupby(KEY)[LABEL].nunique()
        if (clash > 1).any():
            request_id, row = clash[clash > 1].index[0]
            raise LabelError(
                f"labels file: request {request_id!r} row {row} has two different labels"
            )
        out = out.drop_duplicates(KEY)
    return out.reset_index(drop=True)


def _shown(value: Any) -> str:
    """A file's value as the user wrote it: -1, 'lots' (not np.int64(-1))."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _class_name(value: Any) -> str:
    # 1.0 read from a CSV is the class "1" the API answered (labels are strings there)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# ------------------------------------------------------------------------ join


@dataclass(frozen=True)
class Joined:
    rows: pd.DataFrame  # the log's rows that have a label, with a `label` column
    labels: int  # labels read
    unmatched: int  # labels with no logged prediction (yet)
    ambiguous: int  # labels whose key the log holds more than once: left out


def join_labels(log: pd.DataFrame, labels: pd.DataFrame) -> Joined:
    """Each label against the one logged prediction it belongs to (exactly once)."""
    keys = pd.DataFrame({"request_id": log[REQUEST_ID].astype(str), "row": log[ROW]})
    counts = keys.value_counts()
    once = counts[counts == 1].index
    twice = counts[counts > 1].index
    label_keys = pd.MultiIndex.from_frame(labels[KEY])
    ambiguous = int(label_keys.isin(twice).sum())
    matched = labels[label_keys.isin(once)]
    unique = ~keys.duplicated(keep=False).to_numpy()
    indexed = log.assign(request_id=keys["request_id"], row=keys["row"])[unique]
    rows = indexed.merge(matched, on=KEY, how="inner", validate="one_to_one")
    return Joined(rows, len(labels), len(labels) - len(matched) - ambiguous, ambiguous)


# ----------------------------------------------------------------- live metrics


@dataclass(frozen=True)
class LiveMetric:
    name: str
    value: float
    low: float
    high: float
    test: float | None  # the version's test-set value
    drop: float | None  # test - live in the metric's bad direction (> 0: worse live)
    max_drop: float | None
    alarm: bool

    @property
    def worse_by_at_least(self) -> float | None:
        """The drop the whole confidence interval shows (its optimistic end)."""
        if self.test is None or math.isnan(self.low) or math.isnan(self.high):
            return None
        best = self.high if HIGHER_IS_BETTER[self.name] else self.low
        return self.test - best if HIGHER_IS_BETTER[self.name] else best - self.test


@dataclass(frozen=True)
class WindowResult:
    model_version: str
    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    judged: bool  # enough labelled rows for a verdict
    metrics: list[LiveMetric] = field(default_factory=list)

    @property
    def alarm(self) -> bool:
        return any(m.alarm for m in self.metrics)


def live_metric_values(rows: pd.DataFrame, task: str) -> tuple[Any, Any, list[str]]:
    """(truth, scores, classes) of labelled log rows: probabilities for classification
    (columns in sorted class order, as the test set's metrics), predicted values for
    regression. Classes another version answered (all NaN here) are left out."""
    if task == "regression":
        truth = rows[LABEL].to_numpy(dtype=float)
        return truth, pd.to_numeric(rows[PREDICTION]).to_numpy(dtype=float), []
    classes = sorted(
        c.removeprefix(PROBABILITY_PREFIX)
        for c in rows.columns
        if c.startswith(PROBABILITY_PREFIX) and rows[c].notna().any()
    )
    if not classes:
        raise LabelError(
            "the logged predictions have no probabilities: a regression model? (schema task)"
        )
    proba = rows[[PROBABILITY_PREFIX + c for c in classes]].to_numpy(dtype=float)
    return rows[LABEL].astype(str).to_numpy(), proba, classes


class WeightedScorer:
    """The metrics of one window's labelled rows, each row counted `weights[i]` times.

    A bootstrap resample is such a count per row (how often it was drawn), so every value
    here equals compute_metrics / compute_regression_metrics on the rows repeated by their
    counts (the unit tests check it). What those functions redo on every call is done once
    here: labels coded as integers, per-row log loss and errors, and the AUC's sort. The
    rows are kept in the order of the (first) AUC score, tied scores in groups, so a
    resample is a few sequential passes: the bootstrap draws its counts in that order
    directly (rows are exchangeable), `score(weights)` reorders the caller's.
    """

    def __init__(self, truth: Any, scores: Any, classes: Sequence[str], task: str) -> None:
        self.task = task
        self.rows = len(truth)
        self.order: np.ndarray | None = None
        if task == "regression":
            self.y = np.asarray(truth, dtype=np.float64)
            self.error = np.asarray(scores, dtype=np.float64) - self.y
            self.has_zero = self.y == 0
            return
        proba = np.asarray(scores, dtype=np.float64)
        index = {c: i for i, c in enumerate(classes)}
        codes = pd.Series(np.asarray(truth).astype(str)).map(index)
        if codes.isna().any():
            unknown = sorted(map(str, set(np.asarray(truth).astype(str)[codes.isna()])))[:5]
            raise LabelError(f"labels {unknown} are not among the model's classes {list(classes)}")
        self.k = len(classes)
        # binary: the AUC of the positive (second) class; multiclass: one vs rest each
        self.auc_columns = [1] if self.k == 2 else list(range(self.k))
        self.order = np.argsort(proba[:, self.auc_columns[0]], kind="stable")
        proba = proba[self.order]
        self.true = codes.to_numpy(dtype=np.int64)[self.order]
        self.cell = self.true * self.k + np.argmax(proba, axis=1)
        p_true = np.clip(proba[np.arange(self.rows), self.true], LOG_LOSS_FLOOR, 1.0)
        self.loss = -np.log(np.clip(p_true, _EPS, 1 - _EPS))
        # per AUC column: its order (None: the rows' own), positives in that order, and
        # where each group of tied scores starts (None: no ties)
        self.auc_parts: list[tuple[np.ndarray | None, np.ndarray, np.ndarray | None]] = []
        for number, column in enumerate(self.auc_columns):
            order = None if number == 0 else np.argsort(proba[:, column], kind="stable")
            ranked = proba[:, column] if order is None else proba[order, column]
            positive = (self.true == column) if order is None else (self.true[order] == column)
            ties = np.diff(ranked) == 0
            starts = np.flatnonzero(np.r_[True, ~ties]) if ties.any() else None
            self.auc_parts.append((order, positive.astype(np.float64), starts))

    def score(self, weights: np.ndarray | None = None) -> dict[str, float]:
        """The metrics with row i counted weights[i] times (None: once each)."""
        if weights is None:
            return self.score_in_order(np.ones(self.rows))
        w = np.asarray(weights, dtype=np.float64)
        return self.score_in_order(w if self.order is None else w[self.order])

    def score_in_order(self, w: np.ndarray) -> dict[str, float]:
        """As `score`, with the weights in the scorer's own row order."""
        w = np.asarray(w, dtype=np.float64)
        total = float(w.sum())
        if total == 0:
            return {}
        if self.task == "regression":
            return self._regression(w, total)
        k = self.k
        counts = np.bincount(self.cell, weights=w, minlength=k * k).reshape(k, k)
        tp = np.diag(counts)
        support, predicted = counts.sum(axis=1), counts.sum(axis=0)
        present = support > 0
        denominator = support + predicted
        f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
        aucs = [self._auc(w, *part) for part in self.auc_parts]
        if k == 2:
            roc_auc = aucs[0]
        else:
            defined = [a for a in aucs if not math.isnan(a)]
            roc_auc = float(np.mean(defined)) if len(defined) >= 2 else math.nan
        return {
            "accuracy": float(tp.sum() / total),
            "balanced_accuracy": float(np.mean(tp[present] / support[present])),
            "f1_macro": float(np.mean(f1)),
            "log_loss": float(np.dot(w, self.loss) / total),
            "roc_auc": roc_auc if present.sum() >= 2 else math.nan,
        }

    @staticmethod
    def _auc(
        w: np.ndarray, order: np.ndarray | None, positive: np.ndarray, starts: np.ndarray | None
    ) -> float:
        """Mann-Whitney AUC with weights, scores ascending: each positive scores the
        negatives below it, and half of those tied with it."""
        ranked = w if order is None else w[order]
        pos = ranked * positive
        neg = ranked - pos
        if starts is not None:
            pos, neg = np.add.reduceat(pos, starts), np.add.reduceat(neg, starts)
        n_pos, n_neg = float(pos.sum()), float(neg.sum())
        if n_pos == 0 or n_neg == 0:
            return math.nan
        below = np.cumsum(neg) - neg
        return float(np.dot(pos, below + neg / 2) / (n_pos * n_neg))

    def _regression(self, w: np.ndarray, total: float) -> dict[str, float]:
        sse = float(np.dot(w, self.error**2))
        mean = float(np.dot(w, self.y) / total)
        sst = float(np.dot(w, (self.y - mean) ** 2))
        metrics = {
            "rmse": math.sqrt(sse / total),
            "mae": float(np.dot(w, np.abs(self.error)) / total),
            "r2": 1.0 - sse / sst if sst > 0 else math.nan,
        }
        if not (self.has_zero & (w > 0)).any():
            relative = np.abs(self.error) / np.where(self.has_zero, 1.0, np.abs(self.y))
            metrics["mape"] = float(np.dot(w, relative) / total)
        return metrics


def bootstrap_intervals(
    scorer: WeightedScorer,
    names: Sequence[str],
    resamples: int,
    confidence: float,
    seed: int,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap of each metric over rows (drawn with replacement)."""
    rng = np.random.default_rng(seed)
    n = scorer.rows
    draws: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(resamples):
        # counts drawn straight in the scorer's row order: rows are exchangeable
        values = scorer.score_in_order(np.bincount(rng.integers(0, n, n), minlength=n))
        for name in names:
            draws[name].append(values.get(name, math.nan))
    alpha = (1 - confidence) / 2
    out = {}
    for name, values in draws.items():
        finite = np.asarray([v for v in values if not math.isnan(v)])
        out[name] = (
            (float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha)))
            if len(finite)
            else (math.nan, math.nan)
        )
    return out


def live_metrics(
    rows: pd.DataFrame,
    task: str,
    test_metrics: Mapping[str, Any],
    max_drop: Mapping[str, float],
    resamples: int,
    confidence: float,
    seed: int,
) -> list[LiveMetric]:
    """The window's metrics with intervals, each against the version's test-set value."""
    truth, scores, classes = live_metric_values(rows, task)
    scorer = WeightedScorer(truth, scores, classes, task)
    point = scorer.score()
    names = list(point)
    intervals = bootstrap_intervals(scorer, names, resamples, confidence, seed)
    out = []
    for name in names:
        value = point[name]
        low, high = intervals[name]
        test = test_metrics.get(name)
        test = float(test) if isinstance(test, int | float) and math.isfinite(test) else None
        drop = None
        if test is not None and not math.isnan(value):
            drop = test - value if HIGHER_IS_BETTER[name] else value - test
        metric = LiveMetric(name, value, low, high, test, drop, max_drop.get(name), False)
        worst = metric.worse_by_at_least
        alarm = metric.max_drop is not None and worst is not None and worst > metric.max_drop
        out.append(replace(metric, alarm=alarm))
    return out


def performance_by_window(
    joined: pd.DataFrame,
    task: str,
    test_metrics: Mapping[str, Mapping[str, Any]],
    window: pd.Timedelta,
    min_labels: int,
    max_drop: Mapping[str, float],
    resamples: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[WindowResult]:
    """Per model version and window (aligned to the epoch, oldest first)."""
    if joined.empty:
        return []
    stamps = joined[TIMESTAMP]
    starts = stamps.dt.floor(window) if window >= pd.Timedelta("1s") else stamps
    out = []
    for (version, start), rows in joined.groupby([joined[MODEL_VERSION], starts], sort=True):
        judged = len(rows) >= min_labels
        metrics = (
            live_metrics(
                rows,
                task,
                test_metrics.get(str(version), {}),
                max_drop,
                resamples,
                confidence,
                seed,
            )
            if judged
            else []
        )
        out.append(WindowResult(str(version), start, start + window, len(rows), judged, metrics))
    return out


def performance_verdict(results: Sequence[WindowResult]) -> tuple[bool, list[str]]:
    """Alarm (True) and one reason per metric beyond its allowed drop."""
    reasons = []
    for result in results:
        for m in result.metrics:
            if m.alarm:
                reasons.append(
                    f"{result.model_version} {result.start:%Y-%m-%d %H:%M}: live {m.name} "
                    f"{m.value:.4f} [{m.low:.4f}, {m.high:.4f}] vs {m.test:.4f} on its test "
                    f"set: worse by at least {m.worse_by_at_least:.4f} > "
                    f"monitor.performance.max_drop.{m.name}: {m.max_drop}"
                )
    return bool(reasons), reasons


def results_to_dict(results: Sequence[WindowResult]) -> list[dict[str, Any]]:
    return [
        {
            "model_version": r.model_version,
            "start": r.start.isoformat(),
            "end": r.end.isoformat(),
            "labelled_rows": r.rows,
            "judged": r.judged,
            "alarm": r.alarm,
            "metrics": {
                m.name: {
                    "live": _finite_or_none(m.value),
                    "low": _finite_or_none(m.low),
                    "high": _finite_or_none(m.high),
                    "test": m.test,
                    "drop": m.drop,
                    "max_drop": m.max_drop,
                    "alarm": m.alarm,
                }
                for m in r.metrics
            },
        }
        for r in results
    ]


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def render_markdown(
    results: Sequence[WindowResult],
    joined: Joined,
    reasons: Sequence[str],
    confidence: float,
    untested: Sequence[str] = (),
) -> str:
    alarm = bool(reasons)
    judged = any(r.judged for r in results)
    title = (
        "🔴 Live performance dropped"
        if alarm
        else "🟢 Live performance holds"
        if judged
        else "⚪ Live performance: not enough labels yet"
    )
    lines = [
        f"## {title}",
        "",
        f"{len(joined.rows)} labelled predictions ({joined.labels} labels; "
        f"{joined.unmatched} without a logged prediction, {joined.ambiguous} ambiguous).",
        "",
    ]
    lines += [f"- {reason}" for reason in reasons]
    if untested:
        lines.append(
            f"- no test-set metrics for {', '.join(untested)} (not in the registry): "
            "live values shown, not judged"
        )
    if reasons or untested:
        lines.append("")
    lines += [
        f"| version | window (UTC) | labelled rows | metric | live [{confidence:.0%} CI] "
        "| test set | drop | allowed |",
        "|---|---|---:|---|---|---:|---:|---:|",
    ]
    for r in results:
        when = f"{r.start:%Y-%m-%d %H:%M}"
        if not r.judged:
            lines.append(f"| {r.model_version} | {when} | {r.rows} | _too few labels_ | | | | |")
        for m in r.metrics:
            lines.append(
                f"| {r.model_version} | {when} | {r.rows} | {m.name} | {m.value:.4f} "
                f"[{m.low:.4f}, {m.high:.4f}] | {_num(m.test)} | {_num(m.drop)} | "
                f"{_num(m.max_drop)}{' 🔴' if m.alarm else ''} |"
            )
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:.4f}"


# ------------------------------------------------------------- label table I/O

LABELS_TABLE = """
CREATE TABLE IF NOT EXISTS labels (
    request_id TEXT NOT NULL,
    row INTEGER NOT NULL,
    label TEXT NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (request_id, row)
)
"""


@dataclass(frozen=True)
class Stored:
    new: int
    duplicates: int  # the same label again: ignored
    conflicts: list[tuple[str, int, str, str]]  # (request_id, row, stored, refused)


def store_labels(path: Path | str, labels: pd.DataFrame, now: float | None = None) -> Stored:
    """Insert each label once, in one transaction: the same label again is a duplicate
    (ignored), a different one for a stored key a conflict (refused: the first stays).
    Set-based in SQLite (a temporary table joined to the stored labels), so a million
    labels cost seconds, not a Python loop over what is stored."""
    received = time.time() if now is None else now
    rows = [
        (str(rid), int(row), _label_text(label))
        for rid, row, label in labels[[*KEY, LABEL]].itertuples(index=False)
    ]
    if pglog.is_url(path):
        return Stored(*pglog.store_labels(str(path), rows, received))
    connection = sqlite3.connect(path, timeout=30)
    try:
        with connection:
            connection.execute(LABELS_TABLE)
            connection.execute(
                "CREATE TEMP TABLE incoming (request_id TEXT, row INTEGER, label TEXT, "
                "PRIMARY KEY (request_id, row))"
            )
            connection.executemany("INSERT OR IGNORE INTO incoming VALUES (?, ?, ?)", rows)
            conflicts = connection.execute(
                "SELECT i.request_id, i.row, l.label, i.label FROM incoming AS i "
                "JOIN labels AS l USING (request_id, row) WHERE l.label != i.label "
                "ORDER BY i.request_id, i.row"
            ).fetchall()
            (duplicates,) = connection.execute(
                "SELECT COUNT(*) FROM incoming AS i JOIN labels AS l USING (request_id, row) "
                "WHERE l.label = i.label"
            ).fetchone()
            new = connection.execute(
                "INSERT INTO labels (request_id, row, label, received) "
                "SELECT request_id, row, label, ? FROM incoming WHERE true "
                "ON CONFLICT (request_id, row) DO NOTHING",
                (received,),
            ).rowcount
            connection.execute("DROP TABLE incoming")
    finally:
        connection.close()
    return Stored(int(new), int(duplicates), [(r, int(n), a, b) for r, n, a, b in conflicts])


def read_labels(path: Path | str, task: str) -> pd.DataFrame:
    """The stored labels (none yet: an empty frame); `path` a SQLite file or a URL."""
    if pglog.is_url(path):
        return _labels_frame(pglog.read_labels(str(path)), task)
    connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        exists = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'labels'"
        ).fetchone()
        found = (
            connection.execute("SELECT request_id, row, label FROM labels").fetchall()
            if exists
            else []
        )
    finally:
        connection.close()
    return _labels_frame(found, task)


def _labels_frame(found: list[Any], task: str) -> pd.DataFrame:
    frame = pd.DataFrame(found, columns=[*KEY, LABEL])
    frame["row"] = frame["row"].astype(np.int64)
    if task == "regression":
        frame[LABEL] = frame[LABEL].astype(float)
    return frame


def _label_text(label: Any) -> str:
    return repr(float(label)) if isinstance(label, float) else str(label)
