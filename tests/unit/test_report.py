"""The PR report: verdict first, tables readable without images, relative image links,
bounded size whatever the classes/params, and snapshots of the whole markdown for a binary
and a multiclass dataset (real models, ONNX-scored). Regenerate the snapshots after an
intended change with `UPDATE_SNAPSHOTS=1 uv run pytest tests/unit/test_report.py`."""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.conftest import mixed_dataset

from mlops_template import compare as c
from mlops_template import report as r
from mlops_template.compare import metric_task
from mlops_template.config import (
    CompareParams,
    DataParams,
    GateParams,
    Params,
    RandomForestParams,
    TrainParams,
    params_as_dict,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"
CONTEXT = r.ReportContext(
    base_ref="main",
    base_commit="0123456789abcdef0123456789abcdef01234567",
    pr_commit="fedcba9876543210fedcba9876543210fedcba98",
    run_url="https://github.com/octo/repo/actions/runs/42",
    images={"roc": r.ROC_IMAGE, "precision_recall": r.PR_CURVE_IMAGE},
    base_seconds=1.25,
    base_stages_restored=("ingest", "validate", "split", "train", "evaluate"),
)


# ---------------------------------------------------------------- real comparisons


def side(frame: pd.DataFrame, params: Params) -> tuple[c.ModelArtifacts, pd.DataFrame]:
    """What the pipeline produces for one side: ONNX, schema, params, validation; test rows."""
    from mlops_template.data import stratified_split
    from mlops_template.train import fit_pipeline, to_onnx
    from mlops_template.validate import check_data, infer_schema

    validation = check_data(frame, params.data, params.validation)
    schema = infer_schema(frame, params.data)
    train, test = stratified_split(frame, params.data.target, params.split)
    model = fit_pipeline(train, schema, params.train)
    artifacts = c.ModelArtifacts(
        onnx=to_onnx(model, schema),
        schema=schema,
        params=params_as_dict(params),
        validation=validation.to_dict(),
        metrics={"test_rows": len(test)},
    )
    return artifacts, test


# The absolute-floor gate the snapshots were written for (not the shipped default).
ABSOLUTE_GATE = GateParams(baseline={}, min={"roc_auc": 0.9, "balanced_accuracy": 0.85})


def real_comparison(kind: str) -> tuple[c.Comparison, c.GateDecision]:
    if kind == "binary":
        from mlops_template.data import load_builtin

        frame = load_builtin("breast_cancer")
        base_params = Params(train=TrainParams(model="logistic_regression"), gate=ABSOLUTE_GATE)
        pr_params = Params(
            gate=ABSOLUTE_GATE,
            train=TrainParams(
                model="random_forest",
                random_forest=RandomForestParams(n_estimators=40, max_depth=4),
            ),
        )
    else:
        # The PR's dataset lost a column the base model uses: fed to it as missing.
        frame = mixed_dataset()
        pr_frame = frame.drop(columns=["size"])
        data = DataParams(target="label", id_columns=["customer_id"])
        base_params = Params(
            data=data, train=TrainParams(model="logistic_regression"), gate=ABSOLUTE_GATE
        )
        pr_params = Params(data=data, train=TrainParams(model="random_forest"), gate=ABSOLUTE_GATE)
    base, _ = side(frame, base_params)
    candidate, test = side(frame if kind == "binary" else pr_frame, pr_params)
    comparison = c.compare(candidate, base, test, pr_params.compare, pr_params.gate)
    return comparison, c.decide_gate(comparison, pr_params.gate)


@pytest.fixture(scope="module", params=["binary", "multiclass"])
def real(request: pytest.FixtureRequest) -> tuple[str, c.Comparison, c.GateDecision]:
    comparison, decision = real_comparison(request.param)
    return request.param, comparison, decision


def normalise(markdown: str) -> str:
    """Volatile parts (content hashes) replaced; everything else must match exactly."""
    return re.sub(r"`[0-9a-f]{12}`", "`<hash>`", markdown)


def test_report_matches_snapshot(real: tuple[str, c.Comparison, c.GateDecision]) -> None:
    kind, comparison, decision = real
    markdown = normalise(r.render_report(comparison, decision, CONTEXT))
    path = SNAPSHOTS / f"report_{kind}.md"
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(markdown)
    assert path.is_file(), f"missing snapshot {path}: run with UPDATE_SNAPSHOTS=1"
    assert markdown == path.read_text()


def test_real_report_content(real: tuple[str, c.Comparison, c.GateDecision]) -> None:
    kind, comparison, decision = real
    markdown = r.render_report(comparison, decision, CONTEXT)
    first = markdown.splitlines()[0]
    assert first.startswith(("✅", "❌", "⚠️")) and "roc_auc" in first
    for metric in comparison.metrics:
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {metric.name} "))
        assert r.num(metric.pr) in row and r.num(metric.base) in row
        assert f"[{r.num(metric.ci_low, signed=True)}, {r.num(metric.ci_high, signed=True)}]" in row
    assert "`train.model` | `logistic_regression` | `random_forest`" in markdown
    assert "[workflow run](https://github.com/octo/repo/actions/runs/42)" in markdown
    assert "![ROC curves, base dashed, PR solid](roc.png)" in markdown
    # confusion matrices as markdown tables, one row per class, for both models
    for label in comparison.classes:
        assert markdown.count(f"| `{label}` | ") >= 2 + 1  # PR, base, class balance
    if kind == "multiclass":
        assert "`size`" in markdown and "scored with these features missing" in markdown
        assert "Columns removed: `size`" in markdown


def test_figures_are_pngs_with_base_and_pr(real: tuple[str, c.Comparison, c.GateDecision]) -> None:
    _, comparison, _ = real
    images = r.figures(comparison)
    assert set(images) == {"roc", "precision_recall", "confusion_matrix"}
    for name, png in images.values():
        assert "/" not in name and png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5_000


# ---------------------------------------------------------------- synthetic, at scale


def synthetic_comparison(
    n_classes: int = 2,
    n_params: int = 3,
    base: bool = True,
    label_chars: int = 6,
    value_chars: int = 5,
    n_features: int = 4,
    failures: int = 0,
) -> c.Comparison:
    rng = np.random.default_rng(0)
    classes = [f"c{i:03d}".ljust(label_chars, "x") for i in range(n_classes)]
    n = max(200, 5 * n_classes)
    y_index = np.r_[np.arange(n_classes), rng.integers(0, n_classes, n - n_classes)]
    y = np.asarray(classes)[y_index]
    logits = rng.normal(size=(n, n_classes))
    logits[np.arange(n), y_index] += 2.0
    good = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    bad = np.roll(good, 1, axis=0)
    names = list(CompareParams().metrics)  # roc_auc first: the headline
    metrics = c.compare_metrics(y, classes, good, bad if base else None, names, 100, 0.95, 1)

    def schema(shift: float, count_shift: int) -> dict[str, Any]:
        return {
            "target": "target",
            "dataset_hash": f"{int(shift * 10):064x}",
            "rows": n + count_shift,
            "class_counts": {k: int(np.sum(y == k)) + count_shift for k in classes},
            "features": [
                {
                    "name": f"feature_{i:04d}",
                    "kind": "numeric",
                    "dtype": "float64",
                    "min": shift,
                    "max": 1.0,
                }
                for i in range(n_features)
            ],
        }

    base_params = {f"section.key_{i:05d}": "v" * value_chars for i in range(n_params)}
    pr_params = {f"section.key_{i:05d}": "w" * value_chars for i in range(n_params)}
    validation = {
        "passed": failures == 0,
        "checks": [{}] * (failures + 10),
        "failures": [
            {"rule": "missing_fraction", "column": f"col_{i}", "detail": "x" * 150}
            for i in range(failures)
        ],
    }
    return c.Comparison(
        classes=classes,
        y_true=y,
        outputs_pr=good,
        outputs_base=bad if base else None,
        metrics=metrics,
        base_available=base,
        base_note="" if base else "main has no dvc.yaml: no base model",
        fed_missing=[],
        data=c.data_diff(schema(0.0, 0) if base else None, schema(0.5, 3), n, n if base else None),
        params=c.params_diff(base_params if base else {}, pr_params),
        validation_pr=c.validation_summary(validation),
        validation_base=c.validation_summary(validation) if base else None,
        confusion_pr=c.confusion(y, good, classes),
        confusion_base=c.confusion(y, bad, classes) if base else None,
        resamples=100,
        confidence=0.95,
        seed=1,
        bootstrap_seconds=0.0,
    )


# The absolute-floor gate these tests (and snapshots) were written for.
GATE = ABSOLUTE_GATE


def render(comparison: c.Comparison, gate: GateParams = GATE, **context: Any) -> str:
    fields = {"base_ref": "main"} | context
    return r.render_report(comparison, c.decide_gate(comparison, gate), r.ReportContext(**fields))


def test_sixty_classes_and_two_thousand_params_stay_under_githubs_limit() -> None:
    comparison = synthetic_comparison(n_classes=60, n_params=2000, n_features=500, failures=100)
    markdown = render(comparison)
    assert len(markdown) < r.GITHUB_COMMENT_LIMIT
    assert len(markdown.encode()) < r.GITHUB_COMMENT_LIMIT * 2
    assert markdown.splitlines()[0].startswith(("✅", "❌"))
    assert "### Params: 2000 changed" in markdown
    assert f"_… {2000 - r.MAX_PARAM_ROWS} more changed params not shown" in markdown
    assert f"_… {60 - r.MAX_CLASS_ROWS} more classes not shown" in markdown
    assert f"_… {500 - r.MAX_SCHEMA_ROWS} more schema changes not shown" in markdown
    # many classes: per-class recall and top confusions instead of 60 x 60 matrices
    assert "| class | test rows | base recall | PR recall |" in markdown
    assert "Most frequent confusions" in markdown
    assert "actual ↓ / predicted →" not in markdown


def test_pathologically_long_names_and_values_are_cut() -> None:
    comparison = synthetic_comparison(
        n_classes=60, n_params=2000, label_chars=5_000, value_chars=50_000, n_features=50
    )
    markdown = render(comparison)
    assert len(markdown) < r.GITHUB_COMMENT_LIMIT
    assert (
        "x" * (r.MAX_CELL_CHARS + 1) not in markdown
        and "w" * (r.MAX_CELL_CHARS + 1) not in markdown
    )


def test_fit_limit_cuts_at_a_line_with_a_note() -> None:
    text = "\n".join(f"line {i} " + "y" * 90 for i in range(2_000))
    cut = r.fit_limit(text, limit=10_000)
    assert len(cut) <= 10_000 and "report truncated" in cut
    assert cut.split("\n\n_…")[0].splitlines()[-1].startswith("line ")
    assert r.fit_limit("short\n") == "short\n"


def test_verdict_line_for_each_outcome() -> None:
    better = synthetic_comparison()
    passed = render(better).splitlines()[0]
    assert passed.startswith("✅ **Model check passed**") and "roc_auc" in passed and "→" in passed
    assert "3 params changed" in passed and "data changed" in passed

    strict = GateParams(baseline={}, min={"roc_auc": 0.999}, max_regression={})
    failed = render(better, strict).splitlines()[0]
    assert failed.startswith("❌ **Model check failed** (gate enforced)")
    assert "1 rule failed: `gate.min.roc_auc`" in failed

    warn = GateParams(mode="warn", baseline={}, min={"roc_auc": 0.999}, max_regression={})
    warned = render(better, warn)
    assert warned.splitlines()[0].startswith("⚠️ **Model check: gate failed in warn mode")
    assert "does not block" in warned

    first = render(synthetic_comparison(base=False))
    assert first.splitlines()[0].startswith("✅ **Model check passed**")
    assert "no comparison: main has no dvc.yaml" in first.splitlines()[0]
    assert "No base model to compare with" in first and "only the minimums apply" in first
    assert "| metric | PR |" in first


def test_gate_table_lists_failed_rules_first() -> None:
    comparison = synthetic_comparison()
    gate = GateParams(baseline={}, min={"accuracy": 0.0, "roc_auc": 0.999}, max_regression={})
    markdown = render(comparison, gate)
    rows = [line for line in markdown.splitlines() if line.startswith("| `gate.")]
    assert rows[0].startswith("| `gate.min.roc_auc` | **FAIL**")
    assert rows[1].startswith("| `gate.min.accuracy` | pass")


def test_cells_are_inert_code_spans() -> None:
    assert r.cell("a|b`c\nd") == "`a\\|b'c d`"
    assert r.cell("@octocat <img src=x>") == "`@octocat <img src=x>`"
    assert r.cell(None) == "`null`" and r.cell(True) == "`true`" and r.cell(0.1) == "`0.1`"
    assert r.cell("z" * 500).endswith("…`") and len(r.cell("z" * 500)) == r.MAX_CELL_CHARS + 2


def test_no_run_link_outside_ci_and_images_only_when_written() -> None:
    markdown = render(synthetic_comparison())
    assert "workflow run" not in markdown and "![" not in markdown
    with_images = render(synthetic_comparison(), images={"roc": "roc.png"})
    assert "](roc.png)" in with_images and "](/" not in with_images


def test_sixty_class_figures_show_the_largest_classes() -> None:
    comparison = synthetic_comparison(n_classes=60)
    images = r.figures(comparison)
    assert set(images) == {"roc", "precision_recall"}  # no unreadable 60 x 60 heatmap
    assert all(png.startswith(b"\x89PNG") for _, png in images.values())
    markdown = render(comparison, images={k: name for k, (name, _) in images.items()})
    assert f"Curves for the {r.MAX_CURVE_PANELS} largest of 60 classes" in markdown


def test_compare_params_defaults_are_what_the_report_states() -> None:
    comparison = synthetic_comparison()
    markdown = render(comparison)
    settings = CompareParams()
    assert settings.confidence == 0.95
    assert "95% interval of Δ from 100 paired bootstrap resamples (seed 1)" in markdown


def test_numpy_curves_match_scikit_learn() -> None:
    from sklearn import metrics as m

    rng = np.random.default_rng(3)
    truth = rng.random(300) < 0.3
    score = np.round(np.clip(truth * 0.3 + rng.random(300) * 0.7, 0, 1), 2)  # many ties
    fpr, tpr, auc = r.curve(truth, score, "roc")
    expected_fpr, expected_tpr, _ = m.roc_curve(truth, score, drop_intermediate=False)
    assert np.allclose(fpr, expected_fpr) and np.allclose(tpr, expected_tpr)
    assert auc == pytest.approx(m.roc_auc_score(truth, score), abs=1e-12)
    recall, precision, ap = r.curve(truth, score, "precision_recall")
    expected_precision, expected_recall, _ = m.precision_recall_curve(truth, score)
    assert np.allclose(recall, expected_recall[::-1])
    assert np.allclose(precision, expected_precision[::-1])
    assert ap == pytest.approx(m.average_precision_score(truth, score), abs=1e-12)
    nothing = r.curve(np.zeros(10, dtype=bool), rng.random(10), "roc")
    assert len(nothing[0]) == 0 and math.isnan(nothing[2])


def test_the_shipped_gates_regression_rules_are_folded_away_in_a_classification_report() -> None:
    # as params.yaml ships it: rules for both tasks, so a fork switches task by params only
    shipped = GateParams(
        baseline={"majority": {"roc_auc": 0.05}, "mean": {"r2": 0.05}, "linear": {"r2": -0.05}},
        max_regression={"roc_auc": 0.01, "r2": 0.02},
    )
    comparison = synthetic_comparison(n_classes=2, n_params=1, n_features=3, failures=0)
    markdown = render(comparison, shipped)
    assert "not judged" not in markdown and "Note: " not in markdown
    (folded,) = [line for line in markdown.splitlines() if line.startswith("<details><summary>")]
    assert "on regression metrics, not used for this model" in folded
    regression_keys = [
        *(f"gate.baseline.{n}.{m}" for n, ms in shipped.baseline.items() for m in ms),
        *(f"gate.max_regression.{m}" for m in shipped.max_regression),
    ]
    for key in regression_keys:
        if metric_task(key.rsplit(".", 1)[1]) == "regression":
            assert f"`{key}`" in markdown, key
        else:  # the classification rules are judged, in the rule table
            assert f"| `{key}` |" in markdown, key
