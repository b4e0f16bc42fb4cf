"""Every file the pipeline reads or writes, relative to the project root.

Paths are constants, not parameters: `params.yaml` holds only hyperparameters and
thresholds, and `dvc.yaml` names these same paths as deps and outs.
"""

from __future__ import annotations

from pathlib import Path

PARAMS = Path("params.yaml")

EXTERNAL_DIR = Path("data/external")
RAW_DATA = Path("data/raw/dataset.parquet")
SCHEMA = Path("data/schema.json")
TRAIN_DATA = Path("data/split/train.parquet")
TEST_DATA = Path("data/split/test.parquet")

VALIDATION_REPORT_MD = Path("reports/validation.md")
VALIDATION_REPORT_JSON = Path("reports/validation.json")

MODEL_SKOPS = Path("models/model.skops")
MODEL_ONNX = Path("models/model.onnx")
TRAIN_INFO = Path("models/train_info.json")

EVAL_DIR = Path("eval")
METRICS = EVAL_DIR / "metrics.json"
PLOTS_DIR = EVAL_DIR / "plots"
IMPORTANCE = EVAL_DIR / "importance.json"
BASELINE = EVAL_DIR / "baseline.json"  # the gate's reference models (train stage)

PR_REPORT_DIR = Path("reports/pr")
PR_REPORT_MD = PR_REPORT_DIR / "report.md"
PR_GATE_JSON = PR_REPORT_DIR / "gate.json"
PR_COMPARISON_JSON = PR_REPORT_DIR / "comparison.json"
DEPLOY_REPORT_DIR = Path("reports/deploy")
DEPLOY_DECISION = DEPLOY_REPORT_DIR / "decision.json"  # registry promote / rollback
MODEL_CARD = DEPLOY_REPORT_DIR / "model_card.md"
MONITOR_REPORT_DIR = Path("reports/monitor")
MONITOR_JSON = MONITOR_REPORT_DIR / "drift.json"
MONITOR_MD = MONITOR_REPORT_DIR / "drift.md"
MONITOR_PLOTS_DIR = MONITOR_REPORT_DIR / "plots"
# Labelled feedback batches (`monitor append`): inside data/external/, the ingest stage's
# dependency, so a new batch makes the next `dvc repro` retrain on it.
FEEDBACK_DIR = EXTERNAL_DIR / "feedback"
# The serving API's prediction log (SQLite); the PREDICTION_LOG environment variable wins.
PREDICTION_LOG = Path("logs/predictions.sqlite")
