"""Batch scoring benchmark: rows/s of `predict`'s core (`batch.run_batch`: read, validate,
score, write; optionally the prediction log) against a plain in-process onnxruntime loop
over the same rows (already in memory: feeds built, `session.run`, nothing else), same
model, same thread count, same chunk size. Prints figures (not a test).

Two plain loops: with onnxruntime's default session (as `train.onnx_session` makes it:
the pool threads spin between calls), and with the session `predict` uses (no
spinning: its own thread needs the CPU meanwhile). The ratios are against the first.

    python bench/batch.py [--rows 1000000] [--repeat 3] [--threads 0] [--root PROJECT]

Without --root the model is the serving tests' mixed model (hist_gradient_boosting, 50
iterations, 3 classes; 2 numeric + 2 categorical features with missing values), trained
into a temporary directory. Each measurement is repeated, interleaved, best of N.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build_mixed_project(root: Path) -> None:
    from tests.conftest import mixed_dataset
    from tests.helpers import FIXTURE_PARAMS

    from mlops_template import train as t
    from mlops_template.config import (
        DataParams,
        HistGradientBoostingParams,
        SplitParams,
        TrainParams,
    )
    from mlops_template.data import stratified_split
    from mlops_template.validate import infer_schema

    frame = mixed_dataset(rows=600, seed=1)
    schema = infer_schema(frame, DataParams(target="label", id_columns=["customer_id"]))
    train, test = stratified_split(frame, "label", SplitParams(test_size=0.25, seed=0))
    params = TrainParams(
        model="hist_gradient_boosting",
        hist_gradient_boosting=HistGradientBoostingParams(max_iter=50),
    )
    pipeline = t.fit_pipeline(train, schema, params)
    onnx_model = t.to_onnx(pipeline, schema)
    parity = t.check_parity(pipeline, onnx_model, test, schema, params.onnx_probability_tolerance)
    for sub in ("models", "data", "eval"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "models/model.onnx").write_bytes(onnx_model)
    info = t.train_info(params, parity, t.skops_bytes(pipeline), onnx_model, len(train))
    (root / "models/train_info.json").write_text(json.dumps(info))
    (root / "data/schema.json").write_text(json.dumps(schema))
    (root / "eval/metrics.json").write_text(json.dumps({"accuracy": 0.5}))
    shutil.copyfile(FIXTURE_PARAMS, root / "params.yaml")


def synthetic_rows(schema: dict, rows: int, seed: int = 2) -> pd.DataFrame:
    """Rows like the training data: numeric around the schema's mean, categorical levels,
    5 % nulls in every feature."""
    rng = np.random.default_rng(seed)
    data: dict[str, object] = {"customer_id": np.arange(rows)}
    for spec in schema["features"]:
        if spec["kind"] == "numeric":
            values = rng.normal(spec.get("mean") or 0.0, spec.get("std") or 1.0, rows)
            values[rng.random(rows) < 0.05] = np.nan
            data[spec["name"]] = values
        else:
            levels = np.asarray(spec["levels"], dtype=object)
            values = levels[rng.integers(0, len(levels), rows)]
            values[rng.random(rows) < 0.05] = None
            data[spec["name"]] = values
    return pd.DataFrame(data)


def plain_loop(session: object, schema: dict, frame: pd.DataFrame, chunk: int) -> float:
    """Seconds for onnxruntime alone over `frame` (in memory), chunk by chunk."""
    from mlops_template.features import MISSING_CATEGORY

    names = [i.name for i in session.get_inputs()]  # type: ignore[attr-defined]
    features = [f["name"] for f in schema["features"] if f["kind"] == "numeric"]
    features += [f["name"] for f in schema["features"] if f["kind"] == "categorical"]
    kinds = {f["name"]: f["kind"] for f in schema["features"]}
    started = time.perf_counter()
    for start in range(0, len(frame), chunk):
        part = frame.iloc[start : start + chunk]
        feeds = {}
        for name, feature in zip(names, features, strict=True):
            if kinds[feature] == "numeric":
                feeds[name] = part[feature].to_numpy(np.float32).reshape(-1, 1)
            else:
                column = part[feature].astype(object).to_numpy()
                column = np.where(pd.isna(column), MISSING_CATEGORY, column)
                feeds[name] = column.reshape(-1, 1)
        session.run(None, feeds)  # type: ignore[attr-defined]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=0, help="0: every CPU")
    parser.add_argument("--root", type=Path, help="a built project (default: the mixed model)")
    args = parser.parse_args()

    from mlops_template import batch, predlog
    from mlops_template.serve import build_contract, load_model, settings_from_env
    from mlops_template.train import onnx_session

    logging.getLogger("mlops_template").setLevel(logging.WARNING)
    threads = args.threads or os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        root = args.root
        if root is None:
            root = tmp / "project"
            build_mixed_project(root)
        settings = settings_from_env(root)
        schema = json.loads((root / "data/schema.json").read_text())
        contract = build_contract(schema, settings.params)
        serve_params = settings.params.model_copy(update={"onnx_threads": threads})
        # as `predict` loads it: onnxruntime's pool threads do not spin between calls
        model = load_model(root, contract, serve_params, "bench", spinning=False)
        session = onnx_session((root / "models/model.onnx").read_bytes(), threads=threads)
        quiet = load_model(root, contract, serve_params, "bench", spinning=False).session
        frame = synthetic_rows(schema, args.rows)
        parquet, csv = tmp / "in.parquet", tmp / "in.csv"
        frame.to_parquet(parquet, row_group_size=args.chunk_rows)
        frame.to_csv(csv, index=False)
        config = batch.BatchConfig(chunk_rows=args.chunk_rows, keep=("customer_id",))
        cases: dict[str, Any] = {
            "plain onnxruntime loop (in memory)": None,
            "plain loop, predict's session (no spinning)": quiet,
            "predict parquet -> parquet": (parquet, tmp / "out.parquet", False),
            "predict parquet -> parquet, prediction log on": (parquet, tmp / "log.parquet", True),
            "predict csv -> csv": (csv, tmp / "out.csv", False),
        }
        best: dict[str, float] = {}
        cpu: dict[str, float] = {}
        for _ in range(args.repeat):
            for name, case in cases.items():
                cpu_started = time.process_time()
                if case is None or not isinstance(case, tuple):
                    seconds = plain_loop(case or session, schema, frame, args.chunk_rows)
                else:
                    source, target, log = case
                    logger = None
                    if log:
                        path = tmp / "predictions.sqlite"
                        path.unlink(missing_ok=True)
                        logger = predlog.PredictionLogger(
                            path, classes=contract.classes, max_queue_rows=2 * args.chunk_rows
                        )
                    started = time.perf_counter()
                    result = batch.run_batch(
                        [source], target, contract, model, "bench", logger, config
                    )
                    if logger is not None:
                        logger.close(timeout=300)
                    seconds = time.perf_counter() - started
                    assert result.rows_scored == args.rows, result
                best[name] = min(best.get(name, float("inf")), seconds)
                used = time.process_time() - cpu_started
                cpu[name] = min(cpu.get(name, float("inf")), used)
        plain = best["plain onnxruntime loop (in memory)"]
        plain_cpu = cpu["plain onnxruntime loop (in memory)"]
        print(f"{args.rows} rows, chunks of {args.chunk_rows}, {threads} onnxruntime thread(s), "
              f"{os.cpu_count()} CPU(s), best of {args.repeat} (wall clock; CPU seconds of "
              "the process, all threads):")  # fmt: skip
        for name, seconds in best.items():
            print(
                f"  {name:48s} {seconds:7.2f} s {args.rows / seconds:10.0f} rows/s"
                f"  {plain / seconds:5.2f}x plain  | CPU {cpu[name]:7.2f} s"
                f"  {plain_cpu / cpu[name]:5.2f}x plain"
            )
        print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
