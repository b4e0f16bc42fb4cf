"""The DVC stages (`ingest`, `validate`, `split`, `train`, `evaluate`) and `check`.

Each stage reads its inputs from the constant paths in `mlops_template.paths`, calls
pure functions and writes its outputs. DVC runs them (see dvc.yaml); they also run alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from mlops_template import paths
from mlops_template.commands.common import model_errors, params, user_errors
from mlops_template.files import (
    atomic_path,
    read_json,
    remove,
    write_bytes,
    write_json,
    write_text,
)
from mlops_template.log import get_logger

if TYPE_CHECKING:
    import pandas as pd

logger = get_logger("pipeline")


def ingest() -> None:
    """Materialise the raw dataset (built-in or your CSV/Parquet) into data/raw/."""
    from mlops_template.data import append_feedback, load_source, normalise_columns, read_feedback

    p = params()
    started = time.perf_counter()
    remove(paths.RAW_DATA)
    with user_errors():
        frame = normalise_columns(load_source(p.data))
        # labelled batches added by `monitor append` (data/external/feedback/)
        feedback = read_feedback(paths.FEEDBACK_DIR)
        source_rows = len(frame)
        frame = append_feedback(frame, feedback, [*p.data.id_columns, *p.data.drop_columns])
    if feedback:
        logger.info(
            "feedback: %d new labelled rows from %d batch(es) in %s",
            len(frame) - source_rows,
            len(feedback),
            paths.FEEDBACK_DIR,
        )
    with atomic_path(paths.RAW_DATA) as tmp:
        frame.to_parquet(tmp, index=False)
    logger.info(
        "ingested %s: %d rows x %d columns -> %s (%.2fs)",
        p.data.source,
        len(frame),
        frame.shape[1],
        paths.RAW_DATA,
        time.perf_counter() - started,
    )


def validate() -> None:
    """Check the raw data against the contract; write data/schema.json and the report."""

    from mlops_template.data import read_parquet
    from mlops_template.validate import (
        check_data,
        failure_message,
        infer_schema,
        infer_task,
        render_validation_markdown,
        warning_message,
    )

    p = params()
    # A failed run must not leave the previous data's schema behind for `split` to use.
    remove(paths.SCHEMA, paths.VALIDATION_REPORT_JSON, paths.VALIDATION_REPORT_MD)
    with user_errors():
        frame = read_parquet(paths.RAW_DATA)
    if p.data.target in frame.columns:
        task, reason = infer_task(frame[p.data.target].dropna(), p.data, p.validation)
        logger.info("task: %s (%s)", task, reason)
    # copies between train and test are measured on the split the `split` stage makes
    result = check_data(frame, p.data, p.validation, p.split)
    write_json(paths.VALIDATION_REPORT_JSON, result.to_dict() | {"source": p.data.source})
    write_text(paths.VALIDATION_REPORT_MD, render_validation_markdown(result, p.data.source))
    if not result.passed:
        for failure in result.failures:
            logger.error("validation: %s", failure_message(failure))
        logger.error("data validation failed; see %s", paths.VALIDATION_REPORT_MD)
        raise typer.Exit(1)
    for warning in result.warnings:
        logger.warning("validation: %s", warning_message(warning))
    write_json(paths.SCHEMA, infer_schema(frame, p.data, p.validation))
    logger.info("validation passed: %d checks, schema -> %s", len(result.checks), paths.SCHEMA)


def split() -> None:
    """Seeded train/test split into data/split/ (stratified for classification)."""

    from mlops_template.data import (
        DataError,
        held_out_rows,
        read_parquet_column,
        write_parquet_rows,
    )

    p = params()
    remove(paths.TRAIN_DATA, paths.TEST_DATA)
    with user_errors():
        schema = read_json(paths.SCHEMA)  # validation passed on this data
        try:
            target = read_parquet_column(paths.RAW_DATA, p.data.target)
        except KeyError:
            raise DataError(
                f"data.target: {p.data.target!r} is not a column of {paths.RAW_DATA} "
                "(run the validate stage, or `dvc repro`, after changing it)"
            ) from None
    # classification: stratified; regression: a seeded share of the rows
    task = "regression" if schema.get("task") == "regression" else "classification"
    is_test = held_out_rows(target.to_frame(), p.data.target, p.split, task)
    del target
    # each part read and written on its own, without pandas (peak memory: one part)
    for rows, path in ((~is_test, paths.TRAIN_DATA), (is_test, paths.TEST_DATA)):
        with atomic_path(path) as tmp:
            write_parquet_rows(paths.RAW_DATA, rows, tmp)
    logger.info(
        "split: %d train rows, %d test rows (seed %d)",
        int((~is_test).sum()),
        int(is_test.sum()),
        p.split.seed,
    )


def train() -> None:
    """Fit the model chosen in params and the gate's reference models (eval/baseline.json,
    see gate.baseline); save the model as skops + ONNX once their parity is checked."""

    from mlops_template import train as t
    from mlops_template.data import read_parquet, release_arrow_memory
    from mlops_template.features import take_feature_frame, target_labels

    p = params()
    remove(paths.MODEL_SKOPS, paths.MODEL_ONNX, paths.TRAIN_INFO, paths.BASELINE)
    with user_errors():
        schema = read_json(paths.SCHEMA)
        train_frame = read_parquet(paths.TRAIN_DATA)
        paths.TEST_DATA.stat()  # fail now, not after training, if it is missing
    started = time.perf_counter()
    labels, train_rows = target_labels(train_frame, schema), len(train_frame)
    dtype = t.numeric_dtype(p.train)  # float32 for the tree-boosting models
    # peak memory: the rows are dropped once they are model inputs, and those once the
    # preprocessor has transformed them (t.fit_in_steps); test rows are read later
    frames = [train_frame]
    del train_frame
    release_arrow_memory()
    with model_errors():
        pipeline = t.fit_in_steps(
            t.build_pipeline(schema, p.train),
            lambda: take_feature_frame(frames.pop(), schema, dtype),
            labels,
            release=release_arrow_memory,
        )
    del labels
    logger.info(
        "trained %s on %d rows (%.2fs)", p.train.model, train_rows, time.perf_counter() - started
    )
    test_frame = read_parquet(paths.TEST_DATA)
    release_arrow_memory()
    # The baselines are fitted here rather than in a stage of their own: a sixth process
    # would pay interpreter, pandas and scikit-learn start-up again (the cold `make run`
    # ratio went from 1.96x to 2.2x); refitting them on a hyperparameter change costs a
    # default logistic regression, a fraction of the model's own fit. Before the ONNX
    # export: skl2onnx, onnx, onnxruntime and skops are not loaded yet (~150 MB, which
    # would stack on the baselines' own fit; 1e6 rows: the stage's peak memory).
    baselines = fit_baselines(p.train.seed, schema, test_frame, p.train.baseline_max_rows)
    release_arrow_memory()
    with model_errors():
        onnx_model = t.to_onnx(pipeline, schema)
    # Serving accepts a null in any feature: the ONNX graph must impute each like sklearn.
    probes = t.missing_value_probes(test_frame, schema)
    if schema.get("task") == "regression":
        value_tolerance = p.train.onnx_value_tolerance
        value_parity = t.check_value_parity(
            pipeline, onnx_model, test_frame, schema, value_tolerance
        )
        value_missing = t.check_value_parity(pipeline, onnx_model, probes, schema, value_tolerance)
        for checked, what in ((value_parity, "test rows"), (value_missing, "test rows with nulls")):
            if not checked.passed:
                logger.error(
                    "ONNX parity failed on %d %s: %d predictions differ by more than "
                    "train.onnx_value_tolerance: %s x max(1, |y|) (max |y_onnx - y_sklearn| "
                    "= %.2e)",
                    checked.rows,
                    what,
                    checked.mismatches,
                    checked.tolerance,
                    checked.max_abs_difference,
                )
                raise typer.Exit(1)
        parity: t.Parity | t.ValueParity = value_parity
        missing_parity: t.Parity | t.ValueParity = value_missing
        difference = value_parity.max_scaled_difference
    else:
        tolerance = p.train.onnx_probability_tolerance
        class_parity = t.check_parity(pipeline, onnx_model, test_frame, schema, tolerance)
        class_missing = t.check_parity(pipeline, onnx_model, probes, schema, tolerance)
        for checked, what in ((class_parity, "test rows"), (class_missing, "test rows with nulls")):
            if not checked.passed:
                logger.error(
                    "ONNX parity failed on %d %s: %d label mismatches, max |p_onnx - p_sklearn| "
                    "= %.2e (train.onnx_probability_tolerance: %s)",
                    checked.rows,
                    what,
                    checked.label_mismatches,
                    checked.max_probability_difference,
                    checked.tolerance,
                )
                raise typer.Exit(1)
        parity, missing_parity = class_parity, class_missing
        difference = class_parity.max_probability_difference
    skops_model = t.skops_bytes(pipeline)
    write_bytes(paths.MODEL_SKOPS, skops_model)
    write_bytes(paths.MODEL_ONNX, onnx_model)
    info = t.train_info(
        p.train, parity, skops_model, onnx_model, train_rows, missing_parity, pipeline
    )
    write_json(paths.TRAIN_INFO, info)
    write_json(paths.BASELINE, baselines)
    logger.info(
        "ONNX parity ok (max |d%s| = %.1e); wrote %s and %s",
        "" if schema.get("task") == "regression" else "p",
        difference,
        paths.MODEL_SKOPS,
        paths.MODEL_ONNX,
    )


def evaluate() -> None:
    """Metrics, plots and feature importance on the test set, logged with dvclive.

    Scores the ONNX model (the served artifact, proven equal to the sklearn model by the
    train stage), so this stage imports neither scikit-learn nor skops.
    """

    from mlops_template.data import read_parquet
    from mlops_template.evaluate import evaluate_model, evaluate_regression

    p = params()
    remove(paths.METRICS, paths.PLOTS_DIR, paths.IMPORTANCE)
    with user_errors():
        schema = read_json(paths.SCHEMA)
        onnx_model = paths.MODEL_ONNX.read_bytes()
        test = read_parquet(paths.TEST_DATA)
    options = (p.evaluate.importance_repeats, p.evaluate.seed, p.evaluate.importance_max_rows)
    if schema.get("task") == "regression":
        with user_errors():
            result = evaluate_regression(onnx_model, test, schema, *options)
    else:
        result = evaluate_model(None, onnx_model, test, schema, *options)
    log_with_dvclive(result)
    write_json(paths.IMPORTANCE, result["importance"])
    for note in result.get("notes", []):
        logger.info("evaluate: %s", note)
    summary = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result["metrics"].items()))
    logger.info("evaluated on %d test rows: %s", result["test_rows"], summary)


def fit_baselines(
    seed: int, schema: dict, test: pd.DataFrame, max_rows: int | None = None
) -> dict[str, Any]:
    """Fit the gate's reference models (majority class, a default linear model) on a
    seeded sample of at most `max_rows` train rows (train.baseline_max_rows; None: all)
    and score them on the `test` rows: the content of eval/baseline.json."""

    from mlops_template.baseline import baseline_metrics
    from mlops_template.data import read_parquet_sample

    started = time.perf_counter()
    # the train rows are read by baseline_metrics, which frees them once they are inputs;
    # only the sampled rows are read
    result = baseline_metrics(
        lambda: read_parquet_sample(paths.TRAIN_DATA, max_rows, seed), test, schema, seed
    )
    shown = (
        ("rmse", "r2") if schema.get("task") == "regression" else ("roc_auc", "balanced_accuracy")
    )
    summary = "; ".join(
        f"{name}: " + ", ".join(f"{k}={m.get(k)}" for k in shown)
        for name, m in result["models"].items()
    )
    logger.info(
        "baselines fitted on %d train rows, scored on %d test rows (%.2fs): %s",
        result["train_rows"],
        len(test),
        time.perf_counter() - started,
        summary,
    )
    return result


def log_with_dvclive(result: dict) -> None:
    from dvclive import Live

    # DVC (dvc.yaml) declares metrics and plots itself; dvclive only writes the files.
    # Both tasks write every plot file dvc.yaml declares: the other task's are empty.
    regression = result.get("task") == "regression"
    empty: list[dict] = []
    with Live(dir=str(paths.EVAL_DIR), dvcyaml=None, save_dvc_exp=False, report=None) as live:
        for name, value in result["metrics"].items():
            live.log_metric(name, value, plot=False)
        for label, values in result.get("per_class", {}).items():
            for name, value in values.items():
                live.log_metric(f"per_class/{label}/{name}", value, plot=False)
        live.log_metric("test_rows", result["test_rows"], plot=False)
        live.log_plot(
            "predictions",
            result["residuals"] if regression else empty,
            x="actual",
            y="predicted",
            template="scatter",
            title="Predicted vs actual (test set)",
        )
        live.log_plot(
            "roc",
            empty if regression else result["roc"],
            x="fpr",
            y="tpr",
            template="simple",
            title="ROC (test set)",
            x_label="false positive rate",
            y_label="true positive rate",
        )
        live.log_plot(
            "precision_recall",
            empty if regression else result["precision_recall"],
            x="recall",
            y="precision",
            template="simple",
            title="Precision-recall (test set)",
            x_label="recall",
            y_label="precision",
        )
        live.log_plot(
            "confusion_matrix",
            empty if regression else result["confusion"],
            x="actual",
            y="predicted",
            template="confusion",
            title="Confusion matrix (test set)",
        )
        live.log_plot(
            "importance",
            result["importance"],
            x="importance",
            y="feature",
            template="bar_horizontal_sorted",
            title="Permutation importance (RMSE rise)"
            if regression
            else "Permutation importance (ROC AUC drop)",
        )


def check(
    params_file: Path = typer.Option(paths.PARAMS, "--params", help="The params file."),
) -> None:
    """Validate params.yaml (and that a data file it names exists) without running anything."""
    p = params(params_file)
    if p.data.builtin is None and not Path(p.data.source).exists():
        logger.error("params.yaml: data.source: %r does not exist", p.data.source)
        raise typer.Exit(2)
    logger.info("params.yaml is valid (model: %s, data: %s)", p.train.model, p.data.source)


def register(app: typer.Typer) -> None:
    for command in (ingest, validate, split, train, evaluate, check):
        app.command()(command)
