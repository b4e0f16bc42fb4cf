"""Model benchmark: which built-in model scales? Prints figures (asserts nothing).

Runs the five pipeline stages (ingest .. evaluate, each its own process as DVC runs
them) on a synthetic table of --rows x --columns (default 300,000 x 30: 26 numeric and
4 categorical features, ~2 % missing, a learnable binary target) for each --models
entry with the model's shipped hyperparameters (params.yaml's train.<model> section),
and prints per stage wall time, CPU seconds and the peak RSS of the stage's process.
A stage over --timeout seconds is stopped and reported as such.

    python bench/models.py                                   # 300k x 30, both tree models
    python bench/models.py --rows 100000 --models random_forest
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.pipeline import fmt_bytes  # noqa: E402
from tests.helpers import copy_template, edit_params, tool_env  # noqa: E402

STAGES = ["ingest", "validate", "split", "train", "evaluate"]


def synthetic_frame(rows: int, columns: int, seed: int = 0) -> pd.DataFrame:
    """COLUMNS features (4 categorical, the rest numeric), ~2 % missing, binary target."""
    rng = np.random.default_rng(seed)
    n_numeric = columns - 4
    numeric = rng.normal(size=(rows, n_numeric))
    frame = pd.DataFrame(numeric, columns=[f"num_{i:02d}" for i in range(n_numeric)])
    for i in range(4):
        levels = np.array([f"level_{j}" for j in range(8 + 4 * i)])
        frame[f"cat_{i}"] = levels[rng.integers(0, len(levels), rows)]
    score = numeric[:, 0] + 0.5 * numeric[:, 1] - 0.5 * numeric[:, 2] * numeric[:, 3]
    score += 0.3 * numeric[:, 4:10].sum(axis=1)
    score += np.where(frame["cat_0"].isin(["level_0", "level_1"]), 1.0, 0.0)
    score += rng.normal(scale=1.0, size=rows)
    for column in ("num_04", "num_05", "cat_1"):
        frame.loc[rng.random(rows) < 0.02, column] = None
    frame["target"] = np.where(score > 0, "yes", "no")
    return frame


def run_stage(stage: str, project: Path, timeout: float) -> dict[str, object]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_template", stage],
        cwd=project,
        env=tool_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.perf_counter() - started > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            timed_out = True
        time.sleep(0.2)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read() if proc.stderr else ""
    if code != 0 and not timed_out:
        raise SystemExit(f"stage {stage} failed ({code}):\n{stderr[-3000:]}")
    return {
        "stage": stage,
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_bytes": usage.ru_maxrss * 1024,
        "timed_out": timed_out,
    }


def bench_model(model: str, data: pd.DataFrame, workdir: Path, timeout: float) -> dict:
    project = copy_template(workdir / model, init_git=False)
    (project / "data" / "external").mkdir(parents=True, exist_ok=True)
    data.to_parquet(project / "data" / "external" / "synthetic.parquet", index=False)
    edit_params(
        project,
        **{
            "data.source": "data/external/synthetic.parquet",
            "data.target": "target",
            "train.model": model,
        },
    )
    stages = []
    for stage in STAGES:
        result = run_stage(stage, project, timeout)
        stages.append(result)
        flag = "  (stopped: over --timeout)" if result["timed_out"] else ""
        print(
            f"  {model:24s} {stage:9s} {result['wall_s']:8.1f} s  cpu {result['cpu_s']:8.1f} s"
            f"  peak RSS {fmt_bytes(result['peak_rss_bytes']):>9s}{flag}",
            flush=True,
        )
        if result["timed_out"]:
            break
    metrics_file = project / "eval" / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    return {
        "model": model,
        "stages": stages,
        "total_wall_s": round(sum(s["wall_s"] for s in stages), 1),
        "max_peak_rss_bytes": max(s["peak_rss_bytes"] for s in stages),
        "completed": not any(s["timed_out"] for s in stages),
        "roc_auc": metrics.get("roc_auc"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=300_000)
    parser.add_argument("--columns", type=int, default=30)
    parser.add_argument("--models", nargs="+", default=["hist_gradient_boosting", "random_forest"])
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per stage")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    data = synthetic_frame(args.rows, args.columns)
    print(f"{args.rows} rows x {args.columns} features, {os.cpu_count()} CPUs", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        for model in args.models:
            results.append(bench_model(model, data, Path(tmp), args.timeout))
    print("\nmodel                     pipeline wall   peak RSS (largest stage)   roc_auc")
    for r in results:
        done = "" if r["completed"] else "  (stopped)"
        auc = "n/a" if r["roc_auc"] is None else f"{r['roc_auc']:.4f}"
        print(
            f"{r['model']:24s} {r['total_wall_s']:10.1f} s   "
            f"{fmt_bytes(r['max_peak_rss_bytes']):>12s}               {auc}{done}"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"rows": args.rows, "columns": args.columns, "results": results}, indent=2)
            + "\n"
        )


if __name__ == "__main__":
    main()
