"""Drift: is the data the production model sees still the data it was trained on?

Pure functions on in-memory frames; `commands/monitor.py` does the reading and writing.

The reference is the training data of the model in production (`data/split/train.parquet`
and `data/schema.json` of its commit). For every feature of the schema:

- **Population stability index** (PSI) over bins cut at the reference quantiles
  (`monitor.bins`; categorical: one bin per reference level, plus one for unseen values),
  with a bin for missing values when either side has any. Proportions get half a count of
  additive smoothing so an empty bin gives a large, finite PSI instead of infinity.
- **A two-sample test**: Kolmogorov–Smirnov on the present values of a numeric feature
  (and, when values are missing, a chi-squared test of the missing share, combined by
  Bonferroni within the feature); chi-squared on the level counts of a categorical feature
  (levels too rare for the test's approximation are pooled). P-values are corrected for
  testing many features at once (`monitor.correction`, Holm by default).

A feature **drifts when both** hold: the change is real (adjusted p < `monitor.p_value`)
and large enough to matter (PSI >= `monitor.psi_threshold`). With a few hundred rows PSI
alone is noisy and raises false alarms; with a million rows any test finds a negligible
difference "significant". Requiring both keeps the false-alarm rate low at any size (the
rate is measured in tests/data/test_drift.py) — the same rule as the quality gate.

**Prediction drift** uses the same rule on the model's outputs: the predicted class and the
predicted probability of each class (binary: of the positive class only). Its reference is
the production model's predictions on the held-out test split: in-distribution data the
model never trained on, so the over-confident predictions a model makes on its own
training rows do not pass for drift, and no labels are needed.

**Out of schema**: per feature, the share of values the data contract did not foresee:
categories not among the schema's levels, numbers outside the schema's [min, max] range,
text in a numeric column, and missing values in a feature the schema saw complete. Any
feature above `monitor.max_out_of_schema_fraction` is a finding on its own.

Fewer current rows than `monitor.min_rows` gives status `insufficient_data`: no verdict.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops_template.config import MonitorParams
from mlops_template.features import MISSING_CATEGORY, feature_frame

Status = Literal["ok", "drift", "insufficient_data"]

MISSING_LABEL = "(missing)"
UNSEEN_LABEL = "(unseen)"
POOLED_LABEL = "(rare levels)"
PREDICTED_CLASS = "predicted_class"
PROBABILITY_PREFIX = "probability:"
PREDICTED_VALUE = "predicted_value"  # a regression model's output
# A chi-squared cell needs an expected count of about five for the test's approximation.
MIN_EXPECTED_COUNT = 5.0
SMOOTHING = 0.5  # counts added to every bin before PSI (no log of zero)
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class Distribution:
    """Proportions per bin, reference vs current (what the report plots)."""

    labels: list[str]
    reference: list[float]
    current: list[float]


@dataclass(frozen=True)
class OutOfSchema:
    rows: int
    unseen: int = 0  # categorical values not among the schema's levels
    out_of_range: int = 0  # numbers outside the schema's [min, max]
    unparseable: int = 0  # text in a numeric column
    missing_required: int = 0  # missing in a feature the schema saw complete
    examples: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return self.unseen + self.out_of_range + self.unparseable + self.missing_required

    @property
    def fraction(self) -> float:
        return self.count / self.rows if self.rows else 0.0


@dataclass(frozen=True)
class ColumnDrift:
    name: str
    kind: Literal["numeric", "categorical"]
    test: Literal["ks", "chi2", "none"]
    statistic: float
    p_value: float  # raw
    psi: float
    distribution: Distribution
    missing_reference: float  # share of missing values
    missing_current: float
    p_adjusted: float = 1.0
    drifted: bool = False
    out_of_schema: OutOfSchema | None = None
    out_of_schema_flagged: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.out_of_schema is not None:
            data["out_of_schema"] |= {
                "count": self.out_of_schema.count,
                "fraction": self.out_of_schema.fraction,
            }
        return data


@dataclass(frozen=True)
class DriftReport:
    status: Status
    reasons: list[str]
    rows_reference: int
    rows_current: int
    features: list[ColumnDrift]  # most drifted first
    predictions: list[ColumnDrift]
    prediction_note: str | None
    out_of_schema_rows: float  # share of current rows with any value outside the schema
    params: dict[str, Any]

    @property
    def drifted(self) -> bool:
        return self.status == "drift"

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "drift": self.drifted,
            "reasons": self.reasons,
            "rows": {"reference": self.rows_reference, "current": self.rows_current},
            "drifted_features": [c.name for c in self.features if c.drifted],
            "out_of_schema_features": [c.name for c in self.features if c.out_of_schema_flagged],
            "out_of_schema_rows_fraction": self.out_of_schema_rows,
            "features": [c.to_dict() for c in self.features],
            "predictions": [c.to_dict() for c in self.predictions],
            "prediction_note": self.prediction_note,
            "params": self.params,
        }


# --------------------------------------------------------------------------- statistics


def psi(reference_counts: np.ndarray, current_counts: np.ndarray) -> float:
    """Population stability index sum((c - r) * ln(c / r)) over bins, smoothed."""
    ref = np.asarray(reference_counts, dtype=float) + SMOOTHING
    cur = np.asarray(current_counts, dtype=float) + SMOOTHING
    ref /= ref.sum()
    cur /= cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner bin edges at the reference quantiles (ties merge bins: fewer, never empty)."""
    present = reference[~np.isnan(reference)]
    if len(present) == 0:
        return np.array([], dtype=float)
    return np.unique(np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1]))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (-inf, e0), [e0, e1), ..., [ek, inf) of the present values."""
    present = values[~np.isnan(values)]
    return np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)


def _edge_labels(edges: np.ndarray) -> list[str]:
    if len(edges) == 0:
        return ["all"]
    shown = [f"{e:.3g}" for e in edges]
    return [f"<{shown[0]}"] + [f"{a}–{b}" for a, b in itertools.pairwise(shown)] + [f"≥{shown[-1]}"]


def _chi2_p(table: np.ndarray) -> tuple[float, float]:
    """Chi-squared test of homogeneity on a 2 x k table (zero columns dropped)."""
    from scipy.stats import chi2_contingency

    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or np.any(table.sum(axis=1) == 0):
        return 0.0, 1.0
    statistic, p_value, _, _ = chi2_contingency(table)
    return float(statistic), float(p_value)


def _proportions(counts: np.ndarray) -> list[float]:
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def numeric_drift(name: str, reference: np.ndarray, current: np.ndarray, bins: int) -> ColumnDrift:
    """PSI over reference-quantile bins (+ a missing bin) and a KS test on present values."""
    from scipy.stats import ks_2samp

    reference = np.asarray(reference, dtype=float)
    current = np.asarray(current, dtype=float)
    edges = quantile_edges(reference, bins)
    ref_counts, cur_counts = bin_counts(reference, edges), bin_counts(current, edges)
    labels = _edge_labels(edges)
    ref_missing, cur_missing = int(np.isnan(reference).sum()), int(np.isnan(current).sum())
    if ref_missing or cur_missing:
        ref_counts = np.append(ref_counts, ref_missing)
        cur_counts = np.append(cur_counts, cur_missing)
        labels = [*labels, MISSING_LABEL]
    ref_present = reference[~np.isnan(reference)]
    cur_present = current[~np.isnan(current)]
    if len(ref_present) >= 2 and len(cur_present) >= 2:
        result = ks_2samp(ref_present, cur_present)
        statistic, p_value = float(result.statistic), float(result.pvalue)
        test: Literal["ks", "none"] = "ks"
    else:
        statistic, p_value, test = 0.0, 1.0, "none"
    if ref_missing or cur_missing:
        # A change in the missing share is drift too: test it and combine (Bonferroni).
        table = np.array(
            [[ref_missing, len(ref_present)], [cur_missing, len(cur_present)]], dtype=float
        )
        _, p_missing = _chi2_p(table)
        p_value = min(1.0, 2 * min(p_value, p_missing))
    return ColumnDrift(
        name=name,
        kind="numeric",
        test=test,
        statistic=statistic,
        p_value=p_value,
        psi=psi(ref_counts, cur_counts),
        distribution=Distribution(labels, _proportions(ref_counts), _proportions(cur_counts)),
        missing_reference=ref_missing / len(reference) if len(reference) else 0.0,
        missing_current=cur_missing / len(current) if len(current) else 0.0,
    )


def categorical_drift(name: str, reference: pd.Series, current: pd.Series) -> ColumnDrift:
    """PSI over the reference levels (+ missing, + one bin for unseen values) and a
    chi-squared test on the level counts, with levels too rare for the test pooled."""
    ref_counts_s = reference.value_counts()
    cur_counts_s = current.value_counts()
    levels = [lvl for lvl in ref_counts_s.index if lvl != MISSING_CATEGORY]
    levels.sort(key=lambda lvl: (-ref_counts_s[lvl], lvl))
    ref_counts = [int(ref_counts_s.get(lvl, 0)) for lvl in levels]
    cur_counts = [int(cur_counts_s.get(lvl, 0)) for lvl in levels]
    labels = list(levels)
    ref_missing = int(ref_counts_s.get(MISSING_CATEGORY, 0))
    cur_missing = int(cur_counts_s.get(MISSING_CATEGORY, 0))
    if ref_missing or cur_missing:
        labels.append(MISSING_LABEL)
        ref_counts.append(ref_missing)
        cur_counts.append(cur_missing)
    known = set(levels) | {MISSING_CATEGORY}
    unseen = int(sum(n for lvl, n in cur_counts_s.items() if lvl not in known))
    labels.append(UNSEEN_LABEL)
    ref_counts.append(0)
    cur_counts.append(unseen)
    ref_arr, cur_arr = np.array(ref_counts, dtype=float), np.array(cur_counts, dtype=float)

    # Test on the finer table (each unseen value its own column), rare columns pooled.
    unseen_counts = [n for lvl, n in cur_counts_s.items() if lvl not in known]
    table = np.array(
        [
            np.concatenate([ref_arr[:-1], np.zeros(len(unseen_counts))]),
            np.concatenate([cur_arr[:-1], np.array(unseen_counts, dtype=float)]),
        ]
    )
    statistic, p_value = _chi2_p(_pool_rare(table))
    return ColumnDrift(
        name=name,
        kind="categorical",
        test="chi2",
        statistic=statistic,
        p_value=p_value,
        psi=psi(ref_arr, cur_arr),
        distribution=Distribution(labels, _proportions(ref_arr), _proportions(cur_arr)),
        missing_reference=ref_missing / len(reference) if len(reference) else 0.0,
        missing_current=cur_missing / len(current) if len(current) else 0.0,
    )


def _pool_rare(table: np.ndarray) -> np.ndarray:
    """Pool the columns whose expected count (under no change) is below five in a row."""
    totals = table.sum(axis=1, keepdims=True)
    if np.any(totals == 0):
        return table
    share = table.sum(axis=0) / totals.sum()
    expected = share[None, :] * totals
    rare = np.any(expected < MIN_EXPECTED_COUNT, axis=0)
    if rare.sum() <= 1:
        return table
    return np.column_stack([table[:, ~rare], table[:, rare].sum(axis=1)])


def adjust_p_values(p_values: Sequence[float], method: str) -> list[float]:
    """Family-wise correction: holm (step-down), bonferroni, or none."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0 or method == "none":
        return p.tolist()
    if method == "bonferroni":
        return np.minimum(1.0, p * m).tolist()
    order = np.argsort(p, kind="stable")
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, stepped)
    return adjusted.tolist()


# --------------------------------------------------------------------------- schema


def _schema_masks(values: pd.Series, entry: dict[str, Any]) -> dict[str, np.ndarray]:
    """Boolean masks over one current column: which values break which schema rule."""
    missing = values.isna().to_numpy().copy()
    numeric_dtype = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    text = None if numeric_dtype else values.astype(str)
    if text is not None:
        missing |= (text.str.strip() == MISSING_CATEGORY).to_numpy()
    masks = {"missing_required": missing if not entry.get("nullable", True) else None}
    if entry["kind"] == "numeric":
        numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
        masks["unparseable"] = np.isnan(numbers) & ~missing
        with np.errstate(invalid="ignore"):
            outside = np.zeros(len(values), dtype=bool)
            if entry.get("min") is not None:
                outside |= numbers < entry["min"]
            if entry.get("max") is not None:
                outside |= numbers > entry["max"]
        masks["out_of_range"] = outside
    else:
        assert text is not None or len(values) == 0
        known = (text if text is not None else values.astype(str)).isin(
            set(entry.get("levels", []))
        )
        masks["unseen"] = ~missing & ~known.to_numpy()
    return {k: v for k, v in masks.items() if v is not None}


def out_of_schema(values: pd.Series, entry: dict[str, Any]) -> OutOfSchema:
    """Values of one current column that the schema entry did not foresee."""
    return _out_of_schema(values, entry, _schema_masks(values, entry))


def _out_of_schema(
    values: pd.Series, entry: dict[str, Any], masks: dict[str, np.ndarray]
) -> OutOfSchema:
    counts = {k: int(v.sum()) for k, v in masks.items()}
    examples: list[str] = []
    if entry["kind"] == "numeric":
        examples += values[masks["unparseable"]].astype(str).unique()[:MAX_EXAMPLES].tolist()
        outside = pd.to_numeric(values[masks["out_of_range"]], errors="coerce").unique()
        examples += [f"{v:g}" for v in outside[: MAX_EXAMPLES - len(examples)]]
    else:
        unseen = values[masks["unseen"]].astype(str).value_counts()
        examples += unseen.index[:MAX_EXAMPLES].tolist()
    return OutOfSchema(rows=len(values), examples=examples, **counts)


# --------------------------------------------------------------------------- predictions


def positive_class(classes: Sequence[str]) -> str:
    """The class whose probability stands for a binary model (the second sorted one)."""
    return sorted(classes)[-1]


def prediction_frame(
    labels: Sequence[Any], probabilities: np.ndarray | pd.DataFrame, classes: Sequence[str]
) -> pd.DataFrame:
    """Model outputs as columns: predicted class + probability of each class (binary:
    of the positive class only, the other is its complement)."""
    classes = [str(c) for c in classes]
    proba = (
        probabilities.to_numpy(dtype=float)
        if isinstance(probabilities, pd.DataFrame)
        else np.asarray(probabilities, dtype=float)
    )
    out: dict[str, Any] = {PREDICTED_CLASS: pd.Series(labels).astype(str).to_numpy()}
    kept = [positive_class(classes)] if len(classes) == 2 else classes
    for name in kept:
        out[f"{PROBABILITY_PREFIX}{name}"] = proba[:, classes.index(name)] if len(proba) else []
    return pd.DataFrame(out)


def _prediction_drifts(
    reference: pd.DataFrame, current: pd.DataFrame, bins: int
) -> list[ColumnDrift]:
    drifts = []
    for column in reference.columns:
        if column not in current.columns:
            continue
        if column == PREDICTED_CLASS:
            drifts.append(
                categorical_drift(
                    column, reference[column].astype(str), current[column].astype(str)
                )
            )
        else:
            drifts.append(
                numeric_drift(
                    column,
                    reference[column].to_numpy(dtype=float),
                    pd.to_numeric(current[column], errors="coerce").to_numpy(dtype=float),
                    bins,
                )
            )
    return drifts


# --------------------------------------------------------------------------- the check


def _rank_key(column: ColumnDrift) -> tuple[bool, float, float]:
    return (not column.drifted, -column.psi, column.p_adjusted)


def _decide(column: ColumnDrift, p_adjusted: float, params: MonitorParams) -> ColumnDrift:
    drifted = p_adjusted < params.p_value and column.psi >= params.psi_threshold
    flagged = (
        column.out_of_schema is not None
        and column.out_of_schema.fraction > params.max_out_of_schema_fraction
    )
    return replace(column, p_adjusted=p_adjusted, drifted=drifted, out_of_schema_flagged=flagged)


def _reason(column: ColumnDrift, params: MonitorParams, what: str) -> str:
    test = {"ks": "KS", "chi2": "chi-squared", "none": "no"}[column.test]
    return (
        f"{what} {column.name!r} drifted: PSI {column.psi:.3f} >= monitor.psi_threshold "
        f"{params.psi_threshold} and {test} test p = {column.p_adjusted:.2g} "
        f"({params.correction}-adjusted) < monitor.p_value {params.p_value}"
    )


def _schema_reason(column: ColumnDrift, params: MonitorParams) -> str:
    oos = column.out_of_schema
    assert oos is not None
    parts = [
        f"{n} {label}"
        for n, label in (
            (oos.unseen, "unseen categories"),
            (oos.out_of_range, "out of range"),
            (oos.unparseable, "not numbers"),
            (oos.missing_required, "missing (never missing in training)"),
        )
        if n
    ]
    examples = f", e.g. {oos.examples}" if oos.examples else ""
    return (
        f"feature {column.name!r}: {oos.fraction:.1%} of values outside the schema "
        f"({', '.join(parts)}{examples}) > monitor.max_out_of_schema_fraction "
        f"{params.max_out_of_schema_fraction}"
    )


def check_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    schema: dict[str, Any],
    params: MonitorParams,
    reference_predictions: pd.DataFrame | None = None,
    current_predictions: pd.DataFrame | None = None,
    prediction_note: str | None = None,
) -> DriftReport:
    """Compare `current` with `reference` feature by feature (and their predictions, when
    both are given); the verdict and its reasons. Pure: frames in, a report out."""
    missing = [f["name"] for f in schema["features"] if f["name"] not in current.columns]
    if missing:
        raise KeyError(f"the current data lacks the feature column(s) {missing} of the schema")
    settings = params.model_dump(mode="json")
    rows_ref, rows_cur = len(reference), len(current)
    if rows_cur < params.min_rows or rows_ref < params.min_rows:
        side, rows = (
            ("current", rows_cur) if rows_cur < params.min_rows else ("reference", rows_ref)
        )
        return DriftReport(
            status="insufficient_data",
            reasons=[
                f"not enough data: the {side} data has {rows} rows, fewer than "
                f"monitor.min_rows {params.min_rows}; no verdict"
            ],
            rows_reference=rows_ref,
            rows_current=rows_cur,
            features=[],
            predictions=[],
            prediction_note=prediction_note,
            out_of_schema_rows=0.0,
            params=settings,
        )

    ref = feature_frame(reference, schema)
    cur = feature_frame(current, schema)
    columns: list[ColumnDrift] = []
    bad_rows = np.zeros(rows_cur, dtype=bool)  # rows with any value outside the schema
    for entry in schema["features"]:
        name = entry["name"]
        if entry["kind"] == "numeric":
            column = numeric_drift(
                name, ref[name].to_numpy(dtype=float), cur[name].to_numpy(dtype=float), params.bins
            )
        else:
            column = categorical_drift(name, ref[name], cur[name])
        masks = _schema_masks(current[name], entry)
        for mask in masks.values():
            bad_rows |= mask
        columns.append(replace(column, out_of_schema=_out_of_schema(current[name], entry, masks)))

    predictions: list[ColumnDrift] = []
    if reference_predictions is not None and current_predictions is not None:
        predictions = _prediction_drifts(reference_predictions, current_predictions, params.bins)
    elif prediction_note is None:
        prediction_note = "no predictions given: prediction drift not checked"

    family = [c for c in columns + predictions if c.test != "none"]
    adjusted = dict(
        zip(
            (id(c) for c in family),
            adjust_p_values([c.p_value for c in family], params.correction),
            strict=True,
        )
    )
    columns = [_decide(c, adjusted.get(id(c), 1.0), params) for c in columns]
    predictions = [_decide(c, adjusted.get(id(c), 1.0), params) for c in predictions]
    columns.sort(key=_rank_key)
    predictions.sort(key=_rank_key)

    reasons = [_reason(c, params, "feature") for c in columns if c.drifted]
    reasons += [_reason(c, params, "prediction") for c in predictions if c.drifted]
    reasons += [_schema_reason(c, params) for c in columns if c.out_of_schema_flagged]
    return DriftReport(
        status="drift" if reasons else "ok",
        reasons=reasons,
        rows_reference=rows_ref,
        rows_current=rows_cur,
        features=columns,
        predictions=predictions,
        prediction_note=prediction_note,
        out_of_schema_rows=float(bad_rows.mean()),
        params=settings,
    )


# --------------------------------------------------------------------------- rendering


def plot_name(column: str) -> str:
    """A file name for a column's plot (feature names may hold any character)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in column)
    return f"{safe or 'column'}.png"


def distribution_png(column: ColumnDrift, max_bins: int = 12) -> bytes:
    """A small bar chart of reference vs current proportions per bin (PNG bytes)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dist = column.distribution
    labels, ref, cur = dist.labels, dist.reference, dist.current
    if len(labels) > max_bins:  # categorical with many levels: the largest changes
        order = np.argsort(-np.abs(np.array(cur) - np.array(ref)))[:max_bins]
        order.sort()
        labels = [labels[i] for i in order]
        ref = [ref[i] for i in order]
        cur = [cur[i] for i in order]
    x = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(4.2, 2.4), dpi=80)
    ax.bar(x - 0.2, ref, width=0.4, label="reference", color="#4c72b0")
    ax.bar(x + 0.2, cur, width=0.4, label="current", color="#dd8452")
    ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=6)
    ax.tick_params(axis="y", labelsize=6)
    ax.set_ylabel("share", fontsize=7)
    flag = "DRIFT" if column.drifted else "ok"
    ax.set_title(f"{column.name}: PSI {column.psi:.2f} ({flag})", fontsize=8)
    ax.legend(fontsize=6, frameon=False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _fmt_p(p: float) -> str:
    return "—" if math.isnan(p) else f"{p:.2g}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _column_table(columns: list[ColumnDrift], with_schema: bool) -> list[str]:
    head = "| rank | column | kind | PSI | test | p (adj.) | missing ref → cur | drifted |"
    rule = "|---:|---|---|---:|---|---:|---|:---:|"
    if with_schema:
        head += " outside schema |"
        rule += "---:|"
    lines = [head, rule]
    for rank, c in enumerate(columns, 1):
        row = (
            f"| {rank} | `{_cell(c.name)}` | {c.kind} | {c.psi:.3f} | {c.test} | "
            f"{_fmt_p(c.p_adjusted)} | {c.missing_reference:.1%} → {c.missing_current:.1%} | "
            f"{'**yes**' if c.drifted else 'no'} |"
        )
        if with_schema:
            oos = c.out_of_schema
            share = f"{oos.fraction:.1%}" if oos else "—"
            row += f" {'**' + share + '**' if c.out_of_schema_flagged else share} |"
        lines.append(row)
    return lines


def render_markdown(
    report: DriftReport,
    source: str,
    reference: str,
    plots: dict[str, str] | None = None,
    max_rows: int = 50,
) -> str:
    """The drift report: verdict and reasons first, then features (most drifted first),
    predictions, values outside the schema and the plots (`plots`: column -> link)."""
    title = {
        "drift": "DRIFT detected",
        "ok": "no drift",
        "insufficient_data": "not enough data (no verdict)",
    }[report.status]
    p = report.params
    lines = [
        f"# Drift check: {title}",
        "",
        f"Current: `{_cell(source)}` · {report.rows_current} rows. "
        f"Reference: `{_cell(reference)}` · {report.rows_reference} rows.",
        "",
    ]
    if report.status == "insufficient_data":
        lines += [
            f"**Not enough data.** {report.reasons[0]}. Collect more rows (a longer window) "
            "and run the check again.",
            "",
        ]
        return "\n".join(lines)
    if report.reasons:
        lines += ["## Why", ""] + [f"- {_cell(r)}" for r in report.reasons] + [""]
    else:
        lines += ["No feature, prediction or schema check crossed its threshold.", ""]
    n_drifted = sum(c.drifted for c in report.features)
    lines += [
        f"## Features ({n_drifted} of {len(report.features)} drifted, most drifted first)",
        "",
        *_column_table(report.features[:max_rows], with_schema=True),
    ]
    if len(report.features) > max_rows:
        lines.append(f"\n… {len(report.features) - max_rows} more in drift.json")
    lines.append("")
    lines += ["## Predictions", ""]
    if report.predictions:
        lines += [*_column_table(report.predictions, with_schema=False), ""]
    if report.prediction_note:
        lines += [f"_{_cell(report.prediction_note)}_", ""]
    flagged = [c for c in report.features if c.out_of_schema and c.out_of_schema.count]
    lines += [
        "## Values outside the schema",
        "",
        f"{report.out_of_schema_rows:.1%} of current rows have at least one value the schema "
        "did not foresee.",
        "",
    ]
    if flagged:
        lines += [
            "| feature | unseen categories | out of range | not numbers | missing (required) "
            "| share | examples |",
            "|---|---:|---:|---:|---:|---:|---|",
        ]
        for c in sorted(flagged, key=lambda c: -c.out_of_schema.fraction)[:max_rows]:  # type: ignore[union-attr]
            o = c.out_of_schema
            assert o is not None
            examples = ", ".join(f"`{_cell(e)}`" for e in o.examples)
            lines.append(
                f"| `{_cell(c.name)}` | {o.unseen} | {o.out_of_range} | {o.unparseable} | "
                f"{o.missing_required} | {o.fraction:.1%} | {examples} |"
            )
        lines.append("")
    if plots:
        lines += ["## Distributions (reference vs current)", ""]
        lines += [f"![{_cell(name)}]({link})" for name, link in plots.items()]
        lines.append("")
    lines += [
        "## How to read this",
        "",
        f"A column drifts when its population stability index is at least "
        f"`monitor.psi_threshold` ({p['psi_threshold']}) **and** its two-sample test "
        f"(Kolmogorov–Smirnov for numbers, chi-squared for categories) gives a "
        f"{p['correction']}-adjusted p-value below `monitor.p_value` ({p['p_value']}): "
        f"a change that is both real and large. PSI bins: {p['bins']} reference quantiles. "
        "Predictions are compared with the production model's predictions on the held-out "
        "test split. A feature with more than `monitor.max_out_of_schema_fraction` "
        f"({p['max_out_of_schema_fraction']}) of its values outside the schema is reported "
        "on its own.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- feedback


def prepare_feedback(
    batch: pd.DataFrame, schema: dict[str, Any], name: str
) -> tuple[pd.DataFrame, list[str]]:
    """A labelled batch checked against the data contract, ready to append: the schema's
    feature columns, the target (and id/dropped columns when present), with the schema's
    dtypes and duplicate rows removed. Returns the frame and the extra columns left out.

    Raises DataError naming the file and the column: no target column, rows without a
    label, labels the model does not know, a missing feature, text in a numeric feature.
    """
    from mlops_template.data import DataError

    target = schema["target"]
    if target not in batch.columns:
        raise DataError(
            f"{name}: no target column {target!r} (data.target): a labelled batch needs the "
            f"true label of every row; columns are {list(batch.columns)[:20]}"
        )
    labels = batch[target]
    unlabelled = int(labels.isna().sum())
    if unlabelled:
        raise DataError(
            f"{name}: {unlabelled} row(s) have no value in the target column {target!r}"
        )
    if schema.get("task") == "regression":
        numbers = pd.to_numeric(labels, errors="coerce")
        if numbers.isna().any():
            examples = labels[numbers.isna()].astype(str).unique()[:3].tolist()
            raise DataError(
                f"{name}: target column {target!r} has value(s) {examples} that are not "
                "numbers (the model predicts a number: data.task regression)"
            )
    classes = [str(c) for c in schema.get("classes", [])]
    unknown = sorted(set(labels.astype(str)) - set(classes))
    if unknown and schema.get("task") != "regression":
        raise DataError(
            f"{name}: target column {target!r} has value(s) {unknown[:5]} that are not among "
            f"the model's classes {classes}"
        )
    features = [f["name"] for f in schema["features"]]
    missing = [c for c in features if c not in batch.columns]
    if missing:
        raise DataError(f"{name}: missing feature column(s) {missing} (see data/schema.json)")

    out = {}
    for entry in schema["features"]:
        column = entry["name"]
        values = batch[column]
        if entry["kind"] == "numeric":
            numbers = pd.to_numeric(values, errors="coerce")
            bad = numbers.isna() & values.notna()
            if bad.any():
                examples = values[bad].astype(str).unique()[:3].tolist()
                raise DataError(
                    f"{name}: column {column!r} is numeric in the schema but has "
                    f"{int(bad.sum())} value(s) that are not numbers, e.g. {examples}"
                )
            dtype = str(entry.get("dtype", "float64"))
            integral = numbers.notna().all() and bool((numbers % 1 == 0).all())
            if dtype.startswith(("int", "uint")) and integral:
                out[column] = numbers.astype(dtype)
            else:
                out[column] = numbers.astype("float64")
        else:
            out[column] = values.astype(object).where(values.notna(), None)
    kept = [*schema.get("id_columns", []), *schema.get("dropped_columns", [])]
    frame = pd.DataFrame(out, index=batch.index)
    for column in kept:
        if column in batch.columns:
            frame[column] = batch[column]
    frame[target] = labels
    extra = [c for c in batch.columns if c not in frame.columns]
    return frame.drop_duplicates().reset_index(drop=True), extra
