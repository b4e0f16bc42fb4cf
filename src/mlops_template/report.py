"""The pull-request report: a comparison and a gate decision in, markdown (and PNG bytes) out.

Pure: `render_report` returns the markdown string, `figures` returns PNG bytes; the
`report` command writes them. The first line is the one-line verdict. Every key number is
in a markdown table, so the report reads fully when images are not hosted; images are
linked relatively (next to report.md) so `cml comment update` can upload them. Whatever
the number of classes or params, the text stays under GitHub's 65,536-character comment
limit: long tables are cut with a note, and a final guard truncates at a line boundary.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_template.compare import (
    Comparison,
    GateDecision,
    MetricComparison,
    ParamChange,
    metric_task,
)
from mlops_template.evaluate import HIGHER_IS_BETTER, curve_classes

GITHUB_COMMENT_LIMIT = 65_536
# Room left for what CML appends (the watermark line) and for multi-byte characters.
REPORT_CHAR_LIMIT = 60_000
MAX_CELL_CHARS = 80
MAX_PARAM_ROWS = 60
MAX_SCHEMA_ROWS = 30
MAX_CLASS_ROWS = 30
MAX_MATRIX_CLASSES = 12  # above this, confusion matrices become per-class tables
MAX_CONFUSION_PAIRS = 10
MAX_FAILURE_LINES = 20
MAX_CURVE_PANELS = 6
MAX_NOTE_CHARS = 2_000

ROC_IMAGE = "roc.png"
PR_CURVE_IMAGE = "precision_recall.png"
CONFUSION_IMAGE = "confusion_matrix.png"
PREDICTED_IMAGE = "predicted_vs_actual.png"
RESIDUALS_IMAGE = "residuals.png"

VERDICT_MARK = {
    "better": "🟢 better",
    "worse": "🔴 worse",
    "no significant change": "⚪ no significant change",
    "undetermined": "❔ undetermined",
    "no base": "—",
}


@dataclass(frozen=True)
class ReportContext:
    """Where the numbers come from: refs, commits, timings, the CI run, the images."""

    base_ref: str
    base_commit: str | None = None
    pr_ref: str | None = None
    pr_commit: str | None = None
    run_url: str | None = None
    images: Mapping[str, str] = field(default_factory=dict)  # kind -> relative file name
    base_seconds: float | None = None
    base_stages_run: Sequence[str] = ()
    base_stages_restored: Sequence[str] = ()


# ---------------------------------------------------------------- small formatting helpers


def cell(value: Any, limit: int = MAX_CELL_CHARS) -> str:
    """A value as an inline code span safe inside a table cell (no pipes, newlines,
    backticks; cut to LIMIT characters). Code spans also keep @mentions and markup inert."""
    text = value if isinstance(value, str) else _plain(value)
    text = re.sub(r"\s+", " ", text).replace("`", "'").replace("|", "\\|")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"`{text}`" if text else "` `"


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    return str(value)


def num(value: float | None, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a" if value is None else str(value)
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None
) -> list[str]:
    align = align or "|".join("---" for _ in header)
    lines = ["| " + " | ".join(header) + " |", f"|{align}|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _cut_note(shown: int, total: int, what: str) -> list[str]:
    if total <= shown:
        return []
    return ["", f"_… {total - shown} more {what} not shown (report size limit)._"]


def _share(count: int | None, total: int | None) -> str:
    if count is None:
        return "—"
    if not total:
        return str(count)
    return f"{count} ({count / total:.1%})"


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _fenced(text: str) -> list[str]:
    text = text.replace("```", "'''")
    if len(text) > MAX_NOTE_CHARS:
        text = "…" + text[-MAX_NOTE_CHARS:]
    return ["```text", text, "```"]


# ---------------------------------------------------------------- sections


def verdict_line(comparison: Comparison, decision: GateDecision) -> str:
    """The one line a reviewer reads: gate outcome, the headline metric, what changed."""
    if decision.passed:
        head = "✅ **Model check passed**"
    elif decision.mode == "enforce":
        head = "❌ **Model check failed** (gate enforced)"
    else:
        head = "⚠️ **Model check: gate failed in warn mode (not blocking)**"
    parts = [head]
    if not decision.passed:
        failed = [r.rule for r in decision.rules if not r.passed]
        parts.append(
            f"{len(failed)} rule{'s' if len(failed) != 1 else ''} failed: "
            + ", ".join(f"`{rule}`" for rule in failed[:4])
            + (" …" if len(failed) > 4 else "")
        )
    headline = comparison.metrics[0] if comparison.metrics else None
    if headline is not None:
        if comparison.base_available and headline.base is not None:
            parts.append(
                f"{headline.name} {num(headline.base)} → {num(headline.pr)} "
                f"(Δ {num(headline.delta, signed=True)}, {headline.verdict})"
            )
        else:
            parts.append(f"{headline.name} {num(headline.pr)}")
    if not comparison.base_available:
        reason = _first_line(comparison.base_note) or "no base model"
        parts.append("no comparison: " + reason.replace("`", "'"))
    else:
        n = len(comparison.params)
        parts.append(f"{n} param{'s' if n != 1 else ''} changed" if n else "no param changed")
        parts.append("data changed" if comparison.data.changed else "data unchanged")
    return " · ".join(parts)


def _metric_name(m: MetricComparison) -> str:
    return f"{m.name} {'↑' if HIGHER_IS_BETTER[m.name] else '↓'}"


def metrics_section(comparison: Comparison) -> list[str]:
    level = f"{comparison.confidence:.0%}"
    lines = ["### Metrics", ""]
    if comparison.base_available:
        lines += [
            f"Both models scored on the same {len(comparison.y_true)} rows (the PR's test set); "
            f"{level} interval of Δ from {comparison.resamples} paired bootstrap resamples "
            f"(seed {comparison.seed}). ↑ higher is better, ↓ lower is better.",
            "",
        ]
        rows = [
            [
                _metric_name(m),
                num(m.base),
                num(m.pr),
                num(m.delta, signed=True),
                "n/a"
                if m.ci_low is None or m.ci_high is None
                else f"[{num(m.ci_low, signed=True)}, {num(m.ci_high, signed=True)}]",
                VERDICT_MARK[m.verdict],
            ]
            for m in comparison.metrics
        ]
        lines += _table(
            ["metric", "base", "PR", "Δ (PR − base)", f"{level} CI of Δ", "verdict"],
            rows,
            "---|---:|---:|---:|---|---",
        )
    else:
        lines += [
            f"No base model to compare with; the PR's model on its {len(comparison.y_true)} "
            "test rows:",
            "",
        ]
        lines += _table(
            ["metric", "PR"],
            [[_metric_name(m), num(m.pr)] for m in comparison.metrics],
            "---|---:",
        )
    if comparison.fed_missing:
        lines += [
            "",
            "⚠️ The PR's data no longer has "
            + ", ".join(cell(c) for c in comparison.fed_missing[:20])
            + (" …" if len(comparison.fed_missing) > 20 else "")
            + ": the base model was scored with these features missing.",
        ]
    return lines


def gate_section(decision: GateDecision) -> list[str]:
    status = "✅ passed" if decision.passed else "❌ failed"
    lines = [f"### Quality gate: {status} (mode: `{decision.mode}`)", ""]
    if not decision.passed and decision.mode == "warn":
        lines += ["Warn mode: the failure is reported and does not block the PR.", ""]
    ordered = sorted(decision.rules, key=lambda r: r.passed)
    if ordered:
        lines += _table(
            ["rule", "result", "detail"],
            [
                [f"`{r.rule}`", "pass" if r.passed else "**FAIL**", r.detail.split(": ", 1)[-1]]
                for r in ordered
            ],
        )
    else:
        lines.append(
            "No gate rules configured (`gate.baseline`, `gate.min`, `gate.max_regression` are empty)."
        )
    for note in decision.notes:
        lines += ["", f"Note: {_first_line(note, 300)}"]
    if other := decision.other_task_rules:
        # params.yaml ships rules for both tasks: the other task's stay folded away
        task = metric_task(other[0].rsplit(".", 1)[1])
        keys = ", ".join(f"`{k}`" for k in other)
        lines += [
            "",
            f"<details><summary>{len(other)} rule(s) on {task} metrics, not used for this "
            f"model</summary>\n\n{keys}\n</details>",
        ]
    return lines


def _param_value(change: ParamChange, side: str) -> str:
    if (side == "base" and change.added) or (side == "pr" and change.removed):
        return "_(absent)_"
    return cell(change.base if side == "base" else change.pr)


def params_section(comparison: Comparison) -> list[str]:
    changes = comparison.params
    lines = [f"### Params: {len(changes)} changed" if changes else "### Params: unchanged", ""]
    if not comparison.base_available and not comparison.validation_base:
        lines.append("No base params to compare with.")
        return lines
    if not changes:
        lines.append("`params.yaml` has the same values as the base.")
        return lines
    shown = changes[:MAX_PARAM_ROWS]
    lines += _table(
        ["param", "base", "PR"],
        [[cell(c.key), _param_value(c, "base"), _param_value(c, "pr")] for c in shown],
    )
    return lines + _cut_note(len(shown), len(changes), "changed params")


def data_section(comparison: Comparison) -> list[str]:
    d = comparison.data
    lines = ["### Data: " + ("changed" if d.changed else "unchanged"), ""]

    def short(value: str | None) -> str:
        return cell(value[:12]) if value else "—"

    rows = [
        [
            "dataset hash",
            short(d.base_hash),
            short(d.pr_hash) + (" (same)" if d.base_hash == d.pr_hash and d.pr_hash else ""),
        ],
        ["rows", _plain(d.base_rows) if d.base_rows is not None else "—", _plain(d.pr_rows)],
        [
            "test rows",
            _plain(d.base_test_rows) if d.base_test_rows is not None else "—",
            f"{d.pr_test_rows} (both models scored on these)",
        ],
        [
            "features",
            _plain(d.base_features) if d.base_features is not None else "—",
            _plain(d.pr_features),
        ],
        ["target", cell(d.base_target) if d.base_target else "—", cell(d.pr_target)],
    ]
    lines += _table(["", "base", "PR"], rows)
    for label, columns in (("added", d.added_columns), ("removed", d.removed_columns)):
        if columns:
            lines += [
                "",
                f"Columns {label}: "
                + ", ".join(cell(c) for c in columns[:MAX_SCHEMA_ROWS])
                + (f" … ({len(columns)} in all)" if len(columns) > MAX_SCHEMA_ROWS else ""),
            ]
    if d.schema_changes:
        shown = d.schema_changes[:MAX_SCHEMA_ROWS]
        lines += ["", "Schema changes:", ""]
        lines += _table(
            ["column", "change", "base", "PR"],
            [[cell(s.column), s.what, cell(s.base), cell(s.pr)] for s in shown],
        )
        lines += _cut_note(len(shown), len(d.schema_changes), "schema changes")
    balance = sorted(d.class_balance, key=lambda row: (-(row[2] or 0), -(row[1] or 0), row[0]))
    if balance:
        base_total = sum(b or 0 for _, b, _ in balance) or None
        pr_total = sum(p or 0 for _, _, p in balance) or None
        shown = balance[:MAX_CLASS_ROWS]
        lines += ["", "Class balance (all rows):", ""]
        lines += _table(
            ["class", "base", "PR"],
            [[cell(label), _share(b, base_total), _share(p, pr_total)] for label, b, p in shown],
            "---|---:|---:",
        )
        lines += _cut_note(len(shown), len(balance), "classes")
    return lines


def _matrix_table(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> list[str]:
    header = ["actual ↓ / predicted →", *(cell(c, 24) for c in classes)]
    rows = [[cell(c, 24), *(str(v) for v in row)] for c, row in zip(classes, matrix, strict=True)]
    return _table(header, rows, "---|" + "|".join("---:" for _ in classes))


def confusion_section(comparison: Comparison) -> list[str]:
    if comparison.task == "regression":
        return []  # no classes: the predicted-vs-actual and residual plots show the errors
    classes = comparison.classes
    lines = ["### Confusion matrices (PR's test set)", ""]
    if len(classes) <= MAX_MATRIX_CLASSES:
        for title, matrix in (("PR", comparison.confusion_pr), ("Base", comparison.confusion_base)):
            if matrix is None:
                continue
            lines += [f"**{title}**", ""]
            lines += _matrix_table(matrix, classes)
            lines.append("")
        return lines[:-1]
    # Many classes: per-class recall and the most frequent confusions instead of K x K.
    pr = np.asarray(comparison.confusion_pr)
    base = np.asarray(comparison.confusion_base) if comparison.confusion_base is not None else None
    support = pr.sum(axis=1)
    order = sorted(range(len(classes)), key=lambda i: (-support[i], classes[i]))
    shown = order[:MAX_CLASS_ROWS]

    def recall(matrix: np.ndarray | None, i: int) -> str:
        if matrix is None or support[i] == 0:
            return "—"
        return f"{matrix[i, i] / support[i]:.3f}"

    lines += [
        f"{len(classes)} classes: per-class recall (largest classes first) instead of the full "
        "matrices.",
        "",
    ]
    lines += _table(
        ["class", "test rows", "base recall", "PR recall"],
        [
            [cell(classes[i], 40), str(int(support[i])), recall(base, i), recall(pr, i)]
            for i in shown
        ],
        "---|---:|---:|---:",
    )
    lines += _cut_note(len(shown), len(classes), "classes")
    off = pr.copy()
    np.fill_diagonal(off, 0)
    pairs = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off), strict=True)]
    pairs.sort(key=lambda t: (-t[0], classes[t[1]], classes[t[2]]))
    if pairs:
        lines += ["", "Most frequent confusions of the PR's model:", ""]
        lines += _table(
            ["actual", "predicted", "rows"],
            [
                [cell(classes[i], 40), cell(classes[j], 40), str(n)]
                for n, i, j in pairs[:MAX_CONFUSION_PAIRS]
            ],
            "---|---|---:",
        )
    return lines


def validation_section(comparison: Comparison) -> list[str]:
    def describe(summary: Any) -> str:
        if summary is None or summary.passed is None:
            return "no report"
        status = "✅ passed" if summary.passed else "❌ failed"
        return f"{status} ({summary.checks} checks, {len(summary.failures)} failed)"

    lines = [
        "### Data validation",
        "",
        f"PR: {describe(comparison.validation_pr)} · base: {describe(comparison.validation_base)}",
    ]
    failures = comparison.validation_pr.failures
    if failures:
        lines.append("")
        lines += [f"- {cell(f, 200)}" for f in failures[:MAX_FAILURE_LINES]]
        lines += _cut_note(min(len(failures), MAX_FAILURE_LINES), len(failures), "failures")
    return lines


def images_section(comparison: Comparison, images: Mapping[str, str]) -> list[str]:
    if not images:
        return []
    regression = comparison.task == "regression"
    lines = ["### Plots" if regression else "### Curves", ""]
    many = not regression and len(curve_classes(comparison.classes)) > MAX_CURVE_PANELS
    captions = {
        "roc": "ROC curves, base dashed, PR solid",
        "precision_recall": "Precision-recall curves, base dashed, PR solid",
        "confusion_matrix": "Confusion matrices, base and PR",
        "predicted_vs_actual": "Predicted vs actual on the test rows, base and PR",
        "residuals": "Residuals (predicted - actual) vs predicted, base and PR",
    }
    for kind, name in images.items():
        lines.append(f"![{captions.get(kind, kind)}]({name})")
    if many:
        lines += [
            "",
            f"_Curves for the {MAX_CURVE_PANELS} largest of {len(comparison.classes)} classes._",
        ]
    return lines


def footer(comparison: Comparison, context: ReportContext) -> list[str]:
    base = cell(context.base_ref, 60)
    if context.base_commit:
        base += f" = `{context.base_commit[:12]}`"
    how = []
    if context.base_seconds is not None:
        ran, restored = len(context.base_stages_run), len(context.base_stages_restored)
        how.append(
            f"rebuilt in a temporary worktree in {context.base_seconds:.1f} s "
            f"({restored} stage{'s' if restored != 1 else ''} restored from the DVC cache, {ran} run)"
        )
    pr = ""
    if context.pr_commit:
        pr = f" · PR `{context.pr_commit[:12]}`"
    parts = [f"Base {base}" + (f", {how[0]}" if how else "") + pr]
    if context.run_url:
        parts.append(f"[workflow run]({context.run_url})")
    lines = ["---", " · ".join(parts)]
    if not comparison.base_available and "\n" in comparison.base_note.strip():
        lines += ["", "<details><summary>Why there is no base model</summary>", ""]
        lines += _fenced(comparison.base_note.strip())
        lines += ["", "</details>"]
    return lines


def fit_limit(text: str, limit: int = REPORT_CHAR_LIMIT) -> str:
    """Hard guard: cut at a line boundary with a note if TEXT is still over LIMIT."""
    if len(text) <= limit:
        return text
    note = "\n\n_… report truncated to fit GitHub's comment size limit; the full numbers are in the artifact._\n"
    cut = text.rfind("\n", 0, limit - len(note))
    return text[: max(cut, 0)] + note


def render_report(comparison: Comparison, decision: GateDecision, context: ReportContext) -> str:
    """The whole report. First line: the one-line verdict."""
    sections = [
        [verdict_line(comparison, decision)],
        metrics_section(comparison),
        gate_section(decision),
        params_section(comparison),
        data_section(comparison),
        confusion_section(comparison),
        images_section(comparison, context.images),
        validation_section(comparison),
        footer(comparison, context),
    ]
    text = "\n\n".join("\n".join(s) for s in sections if s) + "\n"
    return fit_limit(text)


# ---------------------------------------------------------------- figures


def _panels(comparison: Comparison) -> list[str]:
    classes = curve_classes(comparison.classes)
    if len(classes) <= MAX_CURVE_PANELS:
        return classes
    support = {c: int(np.sum(comparison.y_true == c)) for c in classes}
    return sorted(classes, key=lambda c: (-support[c], c))[:MAX_CURVE_PANELS]


def _png(figure: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    return buffer.getvalue()


def _ranked_counts(truth: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives above each distinct threshold, highest score first."""
    order = np.argsort(-score, kind="mergesort")
    ordered, hits = score[order], truth[order].astype(np.float64)
    last_of_group = np.r_[np.flatnonzero(np.diff(ordered)), len(ordered) - 1]
    tps = np.cumsum(hits)[last_of_group]
    return tps, (last_of_group + 1) - tps


def curve(truth: np.ndarray, score: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(x, y, area) of the ROC curve (fpr, tpr, AUC) or the precision-recall curve
    (recall, precision, average precision). numpy only: no scikit-learn import."""
    tps, fps = _ranked_counts(np.asarray(truth, dtype=bool), np.asarray(score, dtype=np.float64))
    if tps[-1] == 0 or (kind == "roc" and fps[-1] == 0):
        return np.array([]), np.array([]), math.nan
    if kind == "roc":
        fpr, tpr = np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]
        return fpr, tpr, float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    precision, recall = tps / (tps + fps), tps / tps[-1]
    average_precision = float(np.sum(np.diff(np.r_[0.0, recall]) * precision))
    return np.r_[0.0, recall], np.r_[1.0, precision], average_precision


def _curve_figure(comparison: Comparison, kind: str) -> bytes:
    from matplotlib.figure import Figure

    panels = _panels(comparison)
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    figure = Figure(figsize=(4.2 * cols, 3.8 * rows), layout="constrained")
    sides = [("PR", comparison.outputs_pr, "-", "tab:blue")]
    if comparison.outputs_base is not None:
        sides.append(("base", comparison.outputs_base, "--", "tab:gray"))
    area_name = "AUC" if kind == "roc" else "AP"
    for index, label in enumerate(panels):
        axes = figure.add_subplot(rows, cols, index + 1)
        truth = comparison.y_true == label
        column = comparison.classes.index(label)
        for name, proba, style, color in sides:
            x, y, area = curve(truth, proba[:, column], kind)
            if len(x):
                axes.plot(x, y, style, color=color, label=f"{name} ({area_name} {area:.3f})")
        if kind == "roc":
            axes.plot([0, 1], [0, 1], ":", color="lightgray")
            axes.set_xlabel("false positive rate")
            axes.set_ylabel("true positive rate")
        else:
            axes.set_xlabel("recall")
            axes.set_ylabel("precision")
        title = label if len(label) <= 30 else label[:29] + "…"
        axes.set_title(f"{'ROC' if kind == 'roc' else 'Precision-recall'}: {title}", fontsize=10)
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.02)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
    return _png(figure)


def _confusion_figure(comparison: Comparison) -> bytes:
    from matplotlib.figure import Figure

    matrices = [("PR", comparison.confusion_pr)]
    if comparison.confusion_base is not None:
        matrices.insert(0, ("base", comparison.confusion_base))
    k = len(comparison.classes)
    size = max(3.5, 0.45 * k + 2)
    figure = Figure(figsize=(size * len(matrices), size), layout="constrained")
    labels = [c if len(c) <= 14 else c[:13] + "…" for c in comparison.classes]
    for index, (name, matrix) in enumerate(matrices):
        values = np.asarray(matrix)
        axes = figure.add_subplot(1, len(matrices), index + 1)
        axes.imshow(values, cmap="Blues")
        for (i, j), v in np.ndenumerate(values):
            color = "white" if v > values.max() / 2 else "black"
            axes.text(j, i, str(v), ha="center", va="center", color=color, fontsize=9)
        axes.set_xticks(range(k), labels, rotation=45, ha="right", fontsize=8)
        axes.set_yticks(range(k), labels, fontsize=8)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual")
        axes.set_title(name)
    return _png(figure)


def figures(comparison: Comparison) -> dict[str, tuple[str, bytes]]:
    """PNG images for the report: kind -> (file name, bytes). Matplotlib's Agg renderer,
    no pyplot global state. Confusion images only while the matrices stay legible.
    Regression: predicted vs actual and residuals, base and PR side by side."""
    if comparison.task == "regression":
        return {
            "predicted_vs_actual": (PREDICTED_IMAGE, _regression_figure(comparison, "predicted")),
            "residuals": (RESIDUALS_IMAGE, _regression_figure(comparison, "residuals")),
        }
    out = {
        "roc": (ROC_IMAGE, _curve_figure(comparison, "roc")),
        "precision_recall": (PR_CURVE_IMAGE, _curve_figure(comparison, "precision_recall")),
    }
    if len(comparison.classes) <= MAX_MATRIX_CLASSES:
        out["confusion_matrix"] = (CONFUSION_IMAGE, _confusion_figure(comparison))
    return out


def _regression_figure(comparison: Comparison, kind: str) -> bytes:
    """Scatter of each side's predictions on the test rows: against the actual values
    (with the y = x line) or their residuals against the predictions (with y = 0)."""
    from matplotlib.figure import Figure

    sides = [("PR", comparison.outputs_pr)]
    if comparison.outputs_base is not None:
        sides.insert(0, ("base", comparison.outputs_base))
    figure = Figure(figsize=(4.5 * len(sides), 4.2))
    axes = figure.subplots(1, len(sides), squeeze=False)[0]
    actual = np.asarray(comparison.y_true, dtype=np.float64)
    for ax, (title, values) in zip(axes, sides, strict=True):
        predicted = np.asarray(values, dtype=np.float64)
        if kind == "predicted":
            ax.scatter(actual, predicted, s=8, alpha=0.6)
            low = float(min(actual.min(), predicted.min())) if len(actual) else 0.0
            high = float(max(actual.max(), predicted.max())) if len(actual) else 1.0
            ax.plot([low, high], [low, high], color="tab:gray", linestyle="--", linewidth=1)
            ax.set_xlabel("actual")
            ax.set_ylabel("predicted")
        else:
            ax.scatter(predicted, predicted - actual, s=8, alpha=0.6)
            ax.axhline(0.0, color="tab:gray", linestyle="--", linewidth=1)
            ax.set_xlabel("predicted")
            ax.set_ylabel("residual (predicted - actual)")
        ax.set_title(title)
    figure.tight_layout()
    return _png(figure)
