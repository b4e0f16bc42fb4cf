"""Pipeline benchmark: prints figures (it is not a test and asserts nothing).

1. Default data: cold `dvc repro` (no outputs, empty cache) against the limit, the same
   five stage functions called in one Python process; plus the five stage commands run
   one by one without DVC, which splits the gap into process start-up and DVC itself.
   --variants measures it for params-only switches too: `regression` (sklearn:diabetes),
   `lightgbm` (train.model: lightgbm), `xgboost`.
2. No-op `dvc repro` (everything up to date) against `dvc status`.
3. Synthetic data (20 columns: 16 numeric, 4 categorical, ~2 % missing, binary target)
   at each size: wall time of the stages run directly and under `dvc repro`, DVC's
   overhead, peak RSS of the largest process against the in-memory frame, and the bytes
   in the DVC cache against the bytes of the pipeline's data (hardlinks: stored once).

Each measurement is the best of --repeats runs (the machine is shared: the minimum is
the least disturbed run); CPU seconds (user + sys of the processes) are shown too.

    python bench/pipeline.py                       # everything, sizes 1e4 1e5 1e6
    python bench/pipeline.py --sizes 1e4 1e5 --repeats 1 --json bench/results/pipeline.json
    python bench/pipeline.py --sizes --variants shipped regression lightgbm  # issue 11
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import copy_template, edit_params, tool_env  # noqa: E402

STAGES = ["ingest", "validate", "split", "train", "evaluate"]  # dvc.yaml order
OUTPUT_DIRS = ["data/raw", "data/split", "models", "eval", "reports"]
OUTPUT_FILES = ["data/schema.json"]
IN_PROCESS = """
import time
started = time.perf_counter()
from mlops_template import log
log.configure()
from mlops_template.commands import pipeline
for stage in {stages!r}:
    getattr(pipeline, stage)()
"""
# `dvc repro` inside a Python process of our own: DVC's own CPU (RUSAGE_SELF) and its stage
# processes' (RUSAGE_CHILDREN) separate cleanly, whatever a stage's run-to-run noise.
DVC_SPLIT = """
import json, resource, sys, time
from dvc.cli import main
started = time.perf_counter()
code = main(["repro"])
wall = time.perf_counter() - started
me = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print("DVC_SPLIT " + json.dumps({"code": code, "wall": wall,
      "dvc_cpu": me.ru_utime + me.ru_stime, "stages_cpu": kids.ru_utime + kids.ru_stime}))
"""
# Params-only switches a fork makes on day one, measured like the shipped params.
VARIANTS: dict[str, dict[str, Any]] = {
    "shipped": {},
    "regression": {"data.source": "sklearn:diabetes"},
    "lightgbm": {"train.model": "lightgbm"},
    "xgboost": {"train.model": "xgboost"},
}
# Big data: a fast model and one importance repeat (the figures are about the pipeline).
SYNTHETIC_PARAMS: dict[str, Any] = {
    "data.source": "data/external/synthetic.parquet",
    "data.target": "target",
    "train.model": "hist_gradient_boosting",
    "train.hist_gradient_boosting.max_iter": 50,
    "evaluate.importance_repeats": 1,
}


@dataclass
class Run:
    wall: float  # seconds
    cpu: float  # user + sys seconds of the process and its children
    peak_rss: int  # bytes, largest single process in the tree
    output: str


# Linux counts a process's peak RSS from before its exec: a child spawned by this
# (large) process starts at this process's RSS, whatever it uses itself. The command
# runs under a bare interpreter (~10 MB) that reports the peak of its own children.
PEAK_RSS_WRAPPER = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"PEAK_RSS_KB {peak}", flush=True)
sys.exit(code)
"""


def measure(args: list[str], cwd: Path) -> Run:
    """Run a command; wall time, CPU time and peak RSS of the largest process of it and
    everything it waited for."""
    started = time.perf_counter()
    wrapped = [sys.executable, "-S", "-c", PEAK_RSS_WRAPPER, *args]
    proc = subprocess.Popen(
        wrapped,
        cwd=cwd,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed in {cwd} ({proc.returncode}):\n{output}")
    output, _, peak = output.rpartition("PEAK_RSS_KB ")
    return Run(wall, usage.ru_utime + usage.ru_stime, int(peak) * 1024, output)


def clean(project: Path, cache: bool = True) -> None:
    """Back to a cold start: no outputs (and, with `cache`, an empty DVC cache)."""
    for rel in OUTPUT_DIRS:
        shutil.rmtree(project / rel, ignore_errors=True)
    for rel in OUTPUT_FILES:
        (project / rel).unlink(missing_ok=True)
    if cache:
        shutil.rmtree(project / ".dvc" / "cache", ignore_errors=True)
        shutil.rmtree(project / ".dvc" / "tmp", ignore_errors=True)


def dvc_split(project: Path) -> dict[str, float]:
    """Cold `dvc repro`: DVC's own CPU seconds vs its stages' CPU seconds, same run."""
    out = measure([sys.executable, "-c", DVC_SPLIT], project).output
    line = next(x for x in out.splitlines() if x.startswith("DVC_SPLIT "))
    figures = json.loads(line.removeprefix("DVC_SPLIT "))
    if figures["code"] != 0:
        raise SystemExit(f"dvc repro failed in {project}:\n{out}")
    return figures


def stage_commands(project: Path) -> list[Run]:
    return [measure([sys.executable, "-m", "mlops_template", s], project) for s in STAGES]


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.wall)


def sum_runs(runs: list[Run]) -> Run:
    return Run(
        sum(r.wall for r in runs), sum(r.cpu for r in runs), max(r.peak_rss for r in runs), ""
    )


def disk_usage(paths: list[Path]) -> tuple[int, int]:
    """(apparent bytes of all files, bytes on disk counting each inode once)."""
    apparent, seen, on_disk = 0, set(), 0
    for top in paths:
        files = [top] if top.is_file() else [p for p in top.rglob("*") if p.is_file()]
        for path in files:
            st = path.stat()
            apparent += st.st_size
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                on_disk += st.st_blocks * 512
    return apparent, on_disk


def synthetic_frame(rows: int, seed: int = 0) -> pd.DataFrame:
    """20 feature columns (16 numeric, 4 categorical), ~2 % missing, a learnable target."""
    rng = np.random.default_rng(seed)
    numeric = rng.normal(size=(rows, 16))
    frame = pd.DataFrame(numeric, columns=[f"num_{i:02d}" for i in range(16)])
    for i in range(4):
        levels = np.array([f"level_{j}" for j in range(8 + 4 * i)])
        frame[f"cat_{i}"] = levels[rng.integers(0, len(levels), rows)]
    score = numeric[:, 0] + 0.5 * numeric[:, 1] - 0.5 * numeric[:, 2] * numeric[:, 3]
    score += np.where(frame["cat_0"].isin(["level_0", "level_1"]), 1.0, 0.0)
    score += rng.normal(scale=1.0, size=rows)
    for column in ("num_04", "num_05", "cat_1"):
        frame.loc[rng.random(rows) < 0.02, column] = None
    frame["target"] = np.where(score > 0, "yes", "no")
    return frame


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def bench_default(workdir: Path, repeats: int, variant: str = "shipped") -> dict[str, Any]:
    project = copy_template(workdir / f"default-{variant}")
    if VARIANTS[variant]:
        edit_params(project, **VARIANTS[variant])
    in_process_code = IN_PROCESS.format(stages=STAGES)
    dvc_runs, direct_runs, inproc_runs = [], [], []
    for _ in range(repeats):
        clean(project)
        inproc_runs.append(measure([sys.executable, "-c", in_process_code], project))
        clean(project)
        direct_runs.append(sum_runs(stage_commands(project)))
        clean(project)
        dvc_runs.append(measure(["dvc", "repro"], project))
    noop = best([measure(["dvc", "repro"], project) for _ in range(max(repeats, 3))])
    status = best([measure(["dvc", "status"], project) for _ in range(max(repeats, 3))])
    assert "Running stage" not in noop.output
    dvc, direct, inproc = best(dvc_runs), best(direct_runs), best(inproc_runs)
    per_stage = stage_commands(project)
    return {
        "cold_dvc_repro": asdict(dvc) | {"output": None},
        "stage_commands": asdict(direct) | {"output": None},
        "in_process": asdict(inproc) | {"output": None},
        "ratio_dvc_to_in_process": dvc.wall / inproc.wall,
        "ratio_cpu_dvc_to_in_process": dvc.cpu / inproc.cpu,
        "per_stage_wall": {s: r.wall for s, r in zip(STAGES, per_stage, strict=True)},
        "noop_dvc_repro": noop.wall,
        "dvc_status": status.wall,
    }


def bench_size(workdir: Path, rows: int, repeats: int) -> dict[str, Any]:
    project = copy_template(workdir / f"rows-{rows}")
    frame = synthetic_frame(rows)
    frame_bytes = int(frame.memory_usage(deep=True).sum())
    source = project / SYNTHETIC_PARAMS["data.source"]
    frame.to_parquet(source, index=False)
    del frame
    edit_params(project, **SYNTHETIC_PARAMS)
    run_git = ["git", "commit", "-qam", "synthetic data"]
    subprocess.run(run_git, cwd=project, env=tool_env(), check=True, capture_output=True)
    baseline = measure([sys.executable, "-m", "mlops_template", "check"], project).peak_rss

    direct_runs, dvc_runs, per_stage = [], [], []
    for _ in range(repeats):
        clean(project)
        stages = stage_commands(project)
        per_stage.append(stages)
        direct_runs.append(sum_runs(stages))
        clean(project)
        dvc_runs.append(measure(["dvc", "repro"], project))
    splits = []
    for _ in range(repeats):
        clean(project)
        splits.append(dvc_split(project))
    split = min(splits, key=lambda f: f["dvc_cpu"] / f["stages_cpu"])
    direct, dvc = best(direct_runs), best(dvc_runs)
    stages = per_stage[direct_runs.index(direct)]
    outputs = [project / d for d in OUTPUT_DIRS] + [project / f for f in OUTPUT_FILES]
    data_apparent, _ = disk_usage(outputs)
    cache_apparent, cache_disk = disk_usage([project / ".dvc" / "cache" / "files"])
    _, together_disk = disk_usage([*outputs, project / ".dvc" / "cache" / "files"])
    return {
        "rows": rows,
        "frame_bytes": frame_bytes,
        "source_file_bytes": source.stat().st_size,
        "direct": asdict(direct) | {"output": None},
        "dvc_repro": asdict(dvc) | {"output": None},
        "dvc_overhead": dvc.wall / direct.wall - 1,
        "dvc_overhead_cpu": dvc.cpu / direct.cpu - 1,
        "dvc_own_cpu": split["dvc_cpu"],
        "dvc_stages_cpu": split["stages_cpu"],
        "dvc_own_share": split["dvc_cpu"] / split["stages_cpu"],
        "per_stage": {
            s: {"wall": r.wall, "peak_rss": r.peak_rss} for s, r in zip(STAGES, stages, strict=True)
        },
        "interpreter_baseline_rss": baseline,
        "peak_rss_to_frame": direct.peak_rss / frame_bytes,
        "peak_rss_above_baseline_to_frame": (direct.peak_rss - baseline) / frame_bytes,
        "output_bytes": data_apparent,
        "cache_bytes": cache_apparent,
        "cache_disk_bytes": cache_disk,
        "outputs_plus_cache_disk_bytes": together_disk,
        "duplication": together_disk / max(cache_disk, 1),
        "cache_type": subprocess.run(
            ["dvc", "config", "cache.type"],
            cwd=project,
            env=tool_env(),
            capture_output=True,
            text=True,
        ).stdout.strip(),
        "links": _link_count(project / "data/split/train.parquet"),
    }


def _link_count(path: Path) -> int:
    return path.stat().st_nlink if path.exists() else 0


def report(results: dict[str, Any]) -> str:
    lines = [f"# Pipeline benchmark ({results['machine']})", ""]
    for variant, d in results.get("defaults", {}).items():
        changes = ", ".join(f"`{k}: {v}`" for k, v in VARIANTS[variant].items())
        lines += [
            f"## Default data, {variant} params" + (f" ({changes})" if changes else ""),
            "",
            "| run | wall s | CPU s |",
            "|---|---:|---:|",
            f"| cold `dvc repro` | {d['cold_dvc_repro']['wall']:.2f} | {d['cold_dvc_repro']['cpu']:.2f} |",
            f"| the stage commands one by one, no DVC | {d['stage_commands']['wall']:.2f} | {d['stage_commands']['cpu']:.2f} |",
            f"| stage functions in one process (the limit) | {d['in_process']['wall']:.2f} | {d['in_process']['cpu']:.2f} |",
            "",
            f"- cold `dvc repro` / one process: **{d['ratio_dvc_to_in_process']:.2f}x** wall "
            f"({d['ratio_cpu_dvc_to_in_process']:.2f}x CPU); target <= 2.0x",
            "- per stage command (wall s): "
            + ", ".join(f"{s} {w:.2f}" for s, w in d["per_stage_wall"].items()),
            f"- no-op `dvc repro`: {d['noop_dvc_repro']:.2f} s; `dvc status`: {d['dvc_status']:.2f} s",
            "",
        ]
    if results.get("sizes"):
        lines += [
            "## Synthetic data (20 feature columns, hist_gradient_boosting, 50 iterations)",
            "",
            "| rows | frame | stages direct s | dvc repro s | DVC's own CPU / stages' CPU (same run) | wall: dvc / direct - 1 | peak RSS | RSS / frame | (RSS - interpreter) / frame | outputs | DVC cache | outputs + cache on disk |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in results["sizes"]:
            lines.append(
                f"| {s['rows']:,} | {fmt_bytes(s['frame_bytes'])} | {s['direct']['wall']:.2f} | "
                f"{s['dvc_repro']['wall']:.2f} | {s['dvc_own_cpu']:.2f} / {s['dvc_stages_cpu']:.2f} s = "
                f"**{s['dvc_own_share']:.1%}** | {s['dvc_overhead']:+.1%} | "
                f"{fmt_bytes(s['direct']['peak_rss'])} | {s['peak_rss_to_frame']:.2f}x | "
                f"{s['peak_rss_above_baseline_to_frame']:.2f}x | {fmt_bytes(s['output_bytes'])} | "
                f"{fmt_bytes(s['cache_bytes'])} | {fmt_bytes(s['outputs_plus_cache_disk_bytes'])} |"
            )
        lines += [""]
        for s in results["sizes"]:
            stages = ", ".join(
                f"{name} {v['wall']:.1f} s / {fmt_bytes(v['peak_rss'])}"
                for name, v in s["per_stage"].items()
            )
            lines.append(f"- {s['rows']:,} rows, per stage (wall / peak RSS): {stages}")
        last = results["sizes"][-1]
        lines += [
            "",
            f"Targets at {last['rows']:,} rows: DVC's own work {last['dvc_own_share']:.1%} of the "
            f"stages' (<= 10 %; the wall-time difference of two runs, {last['dvc_overhead']:+.1%}, "
            "is dominated by training-time noise on a shared machine), "
            f"peak RSS {last['peak_rss_to_frame']:.2f}x the frame (<= 3x), outputs + cache take "
            f"{last['duplication']:.2f}x the cache's disk space (1.00x = no duplication; "
            f"cache.type {last['cache_type']}, outputs have {last['links']} links).",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="*", type=float, default=[1e4, 1e5, 1e6])
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (best is kept)")
    parser.add_argument("--size-repeats", type=int, default=1, help="runs per synthetic size")
    parser.add_argument("--skip-default", action="store_true")
    parser.add_argument(
        "--variants",
        nargs="*",
        choices=sorted(VARIANTS),
        default=["shipped"],
        help="params-only switches to measure on the default data (see VARIANTS)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary projects")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}",
    }
    try:
        results["defaults"] = {}
        for variant in [] if args.skip_default else args.variants:
            print(f"default data, {variant} params ...", file=sys.stderr, flush=True)
            results["defaults"][variant] = bench_default(workdir, args.repeats, variant)
        results["sizes"] = []
        for size in args.sizes:
            print(f"synthetic {int(size):,} rows ...", file=sys.stderr, flush=True)
            results["sizes"].append(bench_size(workdir, int(size), args.size_repeats))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"projects kept in {workdir}", file=sys.stderr)
    print(report(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
