"""Monitoring benchmark: prediction-log writes, the drift check on 1e6 logged rows, and
serving throughput with the prediction log on vs off.

Prints figures (not a test). Needs a built project (`make run`). From the project root:

    uv run python bench/monitor.py [--rows 1000000] [--rounds 6] [--skip-serving | --serving-only]

1. Prediction-log writes: `--rows` rows as 1,000-row requests handed over as the serving
   API does (`record()`: request and response bodies as JSON bytes), then 20,000 one-row
   requests; the time `record()` takes on the caller's thread (p50/p99), the sustained
   rows/s to disk, the database size; and `log()` (columns from any caller, encoded on
   the writer thread).
2. Drift check on those `--rows` rows: read from the SQLite log (`read_log`) and from a
   Parquet file, then `check_drift` (30 features + predictions), and the whole command
   `python -m mlops_template monitor check` end to end for both (process start included;
   for Parquet the command also runs the model on every row).
3. Serving: the API (uvicorn, 1 worker, ONNX model) with the prediction log on and off,
   `--rounds` rounds, each running both modes back to back in alternating order:
   requests/s of 1-row requests at 1 and 8 clients and of 1,000-row requests; the
   server's CPU time per request, all threads (the log writer included) and the main
   thread alone (the event loop: what bounds throughput while the writer has a core);
   and the latency (p50, p99) of requests sent at a steady rate below saturation (1-row
   at 200/s, 1,000-row at 10/s). Figures: the median over rounds of each round's on/off
   ratio, its range, and the noise floor (how far log-off rounds stray from their own
   median: on a shared 2-core machine running its own load generator, often more than
   the 10 % being measured). Served rows are compared with logged rows.
   `--serving-only` reruns this part alone and keeps the other figures.

The current rows are the breast-cancer rows resampled with 2 % multiplicative noise, and
predicted by the project's ONNX model, so the log looks like a real day of traffic.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path.cwd()
BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results" / "monitor.json"
REQUEST_ROWS = 1000
SINGLE_REQUESTS = 20_000

sys.path.insert(0, str(BENCH))
from serving import Http, Server, free_port, load_phase, quiet_env  # noqa: E402

SERVER_SCRIPT = """
import os, sys, uvicorn
from mlops_template import log as logging_setup, paths, predlog
from mlops_template.files import read_json
from mlops_template.serve import create_app, settings_from_env

port, log_path = int(sys.argv[1]), sys.argv[2]
os.environ["MLOPS_LOG_LEVEL"] = "WARNING"
logging_setup.configure()  # prediction-log warnings (drops, failures) go to the server log
settings = settings_from_env()
schema = read_json(settings.root / paths.SCHEMA)
log = None if log_path == "off" else predlog.PredictionLogger(log_path, classes=schema["classes"])
uvicorn.run(create_app(settings, schema, prediction_log=log), host="127.0.0.1", port=port,
            log_level="warning", access_log=False)
"""


def current_rows(rows: int, schema: dict[str, Any]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    from mlops_template.data import load_builtin
    from mlops_template.features import feature_frame, feature_names
    from mlops_template.train import onnx_predict, onnx_session

    source = load_builtin("breast_cancer")[feature_names(schema)]
    rng = np.random.default_rng(0)
    picked = source.iloc[rng.integers(0, len(source), rows)].reset_index(drop=True)
    frame = picked * rng.uniform(0.98, 1.02, size=picked.shape)
    labels, proba = onnx_predict(
        onnx_session(ROOT / "models/model.onnx"), feature_frame(frame, schema), schema
    )
    return frame, labels, proba


def percentile_us(values: list[float], q: float) -> float:
    return float(np.percentile(values, q) * 1e6)


def served_requests(
    frame: pd.DataFrame, labels: np.ndarray, proba: np.ndarray, classes: list[str], rows_each: int
) -> list[Any]:
    """`frame` cut into requests as the serving API hands them to the log: the request
    body as a client sends it (records) and the response body it gets."""
    import orjson

    from mlops_template.serve import PredictionBatch

    records = frame.to_dict("records")
    requests = []
    for start in range(0, len(frame), rows_each):
        part = slice(start, start + rows_each)
        predictions = labels[part].tolist()
        response = orjson.dumps(
            {"model_version": "bench", "request_id": f"r{start}", "classes": classes,
             "predictions": predictions, "probabilities": proba[part],
             "unknown_categories": []},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )  # fmt: skip
        body = orjson.dumps(records[part])
        requests.append(
            PredictionBatch(f"r{start}", 0.0, "bench", {}, tuple(classes), predictions,
                            proba[part], body, response)
        )  # fmt: skip
    return requests


def bench_writes(
    path: Path, frame: pd.DataFrame, labels: np.ndarray, proba: np.ndarray, classes: list[str]
) -> dict[str, float]:
    """What the serving API's hook (`record`) costs its caller, and the rows/s the writer
    thread sustains to SQLite: 1000-row requests (all of `frame`), then 1-row requests;
    and the general `log()` (columns, encoded on the writer thread) for 1000-row ones."""
    from mlops_template.predlog import PredictionLogger

    rows = len(frame)
    out: dict[str, float] = {}
    for name, target, rows_each, count in (
        ("batch", path, REQUEST_ROWS, rows),
        ("single", path.with_name("single.sqlite"), 1, SINGLE_REQUESTS),
    ):
        requests = served_requests(frame.head(count), labels, proba, classes, rows_each)
        # a queue big enough to hold everything: the calls are timed, then the drain
        logger = PredictionLogger(target, classes=classes, max_queue_rows=count + 1)
        calls = []
        started = time.perf_counter()
        for batch in requests:
            batch = batch._replace(timestamp=time.time())
            t = time.perf_counter()
            logger.record(batch)
            calls.append(time.perf_counter() - t)
        logger.close(timeout=None)
        seconds = time.perf_counter() - started
        stats = logger.stats()
        assert stats.written == count and stats.dropped == stats.failed == 0, stats
        out |= {
            f"{name}_rows_per_s": count / seconds,
            f"{name}_record_call_p50_us": percentile_us(calls, 50),
            f"{name}_record_call_p99_us": percentile_us(calls, 99),
        }
        if name == "batch":
            out["db_mb_per_1e6_rows"] = target.stat().st_size / 1e6 * 1e6 / count
    # log(): columns from any caller, encoded on the writer thread
    columns = {name: frame[name].to_numpy() for name in frame.columns}
    count = min(rows, 200_000)
    logger = PredictionLogger(
        path.with_name("log.sqlite"), classes=classes, max_queue_rows=count + 1
    )
    started = time.perf_counter()
    for start in range(0, count, REQUEST_ROWS):
        part = slice(start, start + REQUEST_ROWS)
        batch_columns = {name: values[part] for name, values in columns.items()}
        logger.log(batch_columns, labels[part], proba[part], "bench", f"c{start}")
    logger.close(timeout=None)
    assert logger.stats().written == count, logger.stats()
    out["log_columns_rows_per_s"] = count / (time.perf_counter() - started)
    return out


def bench_checks(
    log: Path, parquet: Path, schema: dict[str, Any], classes: list[str], out_dir: Path
) -> dict[str, float]:
    from mlops_template.config import load_params
    from mlops_template.features import feature_names
    from mlops_template.monitor import check_drift, prediction_frame
    from mlops_template.predlog import PREDICTION, PROBABILITY_PREFIX, read_log

    params = load_params(ROOT / "params.yaml").monitor
    reference = pd.read_parquet(ROOT / "data/split/train.parquet")
    test = pd.read_parquet(ROOT / "data/split/test.parquet")
    from mlops_template.features import feature_frame
    from mlops_template.train import onnx_predict, onnx_session

    labels, proba = onnx_predict(
        onnx_session(ROOT / "models/model.onnx"), feature_frame(test, schema), schema
    )
    ref_pred = prediction_frame(labels, proba, classes)
    out: dict[str, float] = {}

    started = time.perf_counter()
    logged = read_log(log, features=feature_names(schema))
    out["read_sqlite_s"] = time.perf_counter() - started
    current_pred = prediction_frame(
        logged[PREDICTION], logged[[f"{PROBABILITY_PREFIX}{c}" for c in classes]], classes
    )
    started = time.perf_counter()
    report = check_drift(reference, logged, schema, params, ref_pred, current_pred)
    out["check_drift_s"] = time.perf_counter() - started
    out["rows_checked"] = report.rows_current
    out["status_sqlite"] = report.status

    started = time.perf_counter()
    batch = pd.read_parquet(parquet)
    out["read_parquet_s"] = time.perf_counter() - started

    env = dict(os.environ, MLOPS_LOG_LEVEL="WARNING")
    for name, source in (("cli_sqlite_s", log), ("cli_parquet_s", parquet)):
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", "mlops_template", "monitor", "check", "--current", str(source),
             "--out", str(out_dir / name), "--no-fail-on-drift"],
            cwd=ROOT, env=env, text=True, capture_output=True,
        )  # fmt: skip
        out[name] = time.perf_counter() - started
        if result.returncode != 0:
            raise RuntimeError(result.stderr[-2000:])
    del batch
    return out


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """User + system CPU time of a process, all its threads (the log writer included), or
    of one of its threads (the main thread: `thread=pid`, the event loop)."""
    stat = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def paced_latencies_ms(port: int, raws: list[bytes], rate: float, seconds: float) -> list[float]:
    """Latency of requests sent at a steady `rate` (not saturating the server): what a
    client sees when the log writer works in the gaps between requests."""
    client = Http(port)
    out: list[float] = []
    try:
        interval = 1.0 / rate
        next_at = time.perf_counter()
        deadline = next_at + seconds
        i = 0
        while next_at < deadline:
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            started = time.perf_counter()
            status, body = client.send(raws[i % len(raws)])
            out.append((time.perf_counter() - started) * 1e3)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:200]!r}")
            next_at += interval
            i += 1
    finally:
        client.close()
    return out


def bench_serving(
    schema: dict[str, Any], rounds: int, duration: float, tmp: Path
) -> dict[str, Any]:
    """Requests/s and the server's CPU time per request, log off vs on, paired by round.

    Requests/s on a shared 2-core machine (the load generator runs on it too) swing by
    +-10 % from one run to the next with the log off on both sides, so each round runs
    both modes back to back, in alternating order (off-on, on-off, ...), and the figure is
    the median over rounds of each round's on/off ratio, with its range. The server's own
    CPU time per request (all its threads: the log writer included, read from /proc, the
    work done half a second after the phase included) is steadier, and bounds a
    one-worker server's throughput on a busy machine."""
    features = [f["name"] for f in schema["features"]]
    test = pd.read_parquet(ROOT / "data/split/test.parquet")
    rows = json.loads(test[features].to_json(orient="records"))
    single = [Http.request("POST", "/predict", json.dumps([r]).encode()) for r in rows]
    big = [
        Http.request(
            "POST",
            "/predict",
            json.dumps([rows[i % len(rows)] for i in range(REQUEST_ROWS)]).encode(),
        )
    ]
    phases = {
        "1_row_1_client": (single, 1, 1),
        "1_row_8_clients": (single, 8, 1),
        "1000_rows_1_client": (big, 1, REQUEST_ROWS),
    }
    results: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    served_rows = logged_rows = 0
    for round_no in range(rounds):
        order = ("off", "on") if round_no % 2 == 0 else ("on", "off")
        for mode in order:
            log_path = tmp / f"serve-{round_no}.sqlite"
            port = free_port()
            print(f"serving round {round_no + 1}/{rounds}: log {mode} ...", flush=True)
            server = Server(
                f"monitor-{mode}",
                [sys.executable, "-c", SERVER_SCRIPT, str(port), "off" if mode == "off" else str(log_path)],
                port,
                "/health",
                quiet_env(),
            )  # fmt: skip
            figures: dict[str, float] = {}
            try:
                warm_up, _ = load_phase(port, single, 8, 1.0)  # not in the figures
                if mode == "on":
                    served_rows += warm_up  # but logged
                for name, raws, rate in (
                    ("1_row_at_200_rps", single, 200),
                    ("1000_rows_at_10_rps", big, 10),
                ):
                    latencies = paced_latencies_ms(port, raws, rate, duration)
                    figures[f"latency_p50_ms_{name}"] = float(np.percentile(latencies, 50))
                    figures[f"latency_p99_ms_{name}"] = float(np.percentile(latencies, 99))
                    if mode == "on":
                        served_rows += len(latencies) * (1 if raws is single else REQUEST_ROWS)
                for name, (raws, clients, rows_each) in phases.items():
                    pid = server.process.pid
                    cpu, main = cpu_seconds(pid), cpu_seconds(pid, pid)
                    count, elapsed = load_phase(port, raws, clients, duration)
                    time.sleep(0.5)  # the writer's flush of this phase's rows
                    used = cpu_seconds(pid) - cpu
                    used_main = cpu_seconds(pid, pid) - main
                    figures[f"rps_{name}"] = count / elapsed
                    figures[f"cpu_ms_per_request_{name}"] = used / count * 1e3
                    # the event loop's share: what bounds throughput while the writer
                    # thread (and onnxruntime's) have a core of their own
                    figures[f"main_thread_cpu_ms_per_request_{name}"] = used_main / count * 1e3
                    if mode == "on":
                        served_rows += count * rows_each
            finally:
                server.stop()  # SIGTERM: the app's shutdown closes (flushes) the log
            results[mode].append(figures)
            if mode == "on":
                import sqlite3

                with sqlite3.connect(log_path) as db:
                    logged_rows += db.execute(
                        "SELECT SUM(rows) FROM prediction_batches"
                    ).fetchone()[0]
    medians = {
        mode: {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        for mode, runs in results.items()
    }
    paired = {
        k: sorted(on[k] / off[k] for on, off in zip(results["on"], results["off"], strict=True))
        for k in results["off"][0]
    }
    # the noise floor: how far a log-off round strays from the median of the log-off rounds
    noise = {
        k: statistics.median(abs(r[k] / medians["off"][k] - 1) for r in results["off"])
        for k in medians["off"]
    }
    return {
        "median": medians,
        "off_noise": noise,
        "on_over_off": {k: statistics.median(v) for k, v in paired.items()},
        "on_over_off_range": {k: (v[0], v[-1]) for k, v in paired.items()},
        "rounds": results,
        "served_rows_with_log_on": served_rows,
        "logged_rows": logged_rows,
    }


def print_serving(s: dict[str, Any]) -> None:
    rounds = len(s["rounds"]["off"])
    print(f"\n## Serving with the prediction log on vs off ({rounds} paired rounds)")
    print(
        "| figure | off (median) | on (median) | on/off: median of rounds | range "
        "| noise: off rounds' median deviation |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for key in s["median"]["off"]:
        digits = 0 if key.startswith("rps") else 2
        low, high = s["on_over_off_range"][key]
        print(
            f"| {key} | {s['median']['off'][key]:,.{digits}f} | {s['median']['on'][key]:,.{digits}f}"
            f" | {s['on_over_off'][key]:.1%} | {low:.0%}–{high:.0%} | {s['off_noise'][key]:.0%} |"
        )
    print(
        f"rows served with the log on: {s['served_rows_with_log_on']:,}; "
        f"rows in their logs: {s['logged_rows']:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--skip-serving", action="store_true")
    parser.add_argument("--serving-only", action="store_true")
    args = parser.parse_args()

    from mlops_template.files import read_json

    schema = read_json(ROOT / "data/schema.json")
    classes = [str(c) for c in schema["classes"]]
    print(f"load average: {os.getloadavg()[0]:.1f} (2 cores: figures are noisy above ~2)")
    results: dict[str, Any] = {"rows": args.rows}
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp_name:
        tmp = Path(tmp_name)
        if args.serving_only:  # the other figures stay as the last full run wrote them
            if RESULTS.exists():
                results = json.loads(RESULTS.read_text())
            results["serving"] = bench_serving(schema, args.rounds, args.duration, tmp)
            print_serving(results["serving"])
            RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
            return
        print(f"generating {args.rows:,} rows and their predictions ...", flush=True)
        frame, labels, proba = current_rows(args.rows, schema)
        parquet = tmp / "current.parquet"
        frame.to_parquet(parquet, index=False)
        log = tmp / "predictions.sqlite"
        print("prediction log writes ...", flush=True)
        results["writes"] = bench_writes(log, frame, labels, proba, classes)
        del frame
        print("drift checks ...", flush=True)
        results["check"] = bench_checks(log, parquet, schema, classes, tmp)
        if not args.skip_serving:
            results["serving"] = bench_serving(schema, args.rounds, args.duration, tmp)

    w, c = results["writes"], results["check"]
    print("\n## Prediction log writes")
    print("| requests | rows/s to SQLite | record() call p50 | p99 |\n|---|---:|---:|---:|")
    for name, label in (("batch", f"{REQUEST_ROWS}-row"), ("single", "1-row")):
        print(
            f"| {label} | {w[f'{name}_rows_per_s']:,.0f} | {w[f'{name}_record_call_p50_us']:.1f} µs "
            f"| {w[f'{name}_record_call_p99_us']:.1f} µs |"
        )
    print(f"`log()` (columns, encoded on the writer): {w['log_columns_rows_per_s']:,.0f} rows/s")
    print(f"database size: {w['db_mb_per_1e6_rows']:.0f} MB per 1e6 rows (1000-row requests)")
    print(f"\n## Drift check on {c['rows_checked']:,} rows")
    print("| step | seconds |\n|---|---:|")
    print(f"| read the SQLite log (read_log) | {c['read_sqlite_s']:.1f} |")
    print(f"| read the Parquet file | {c['read_parquet_s']:.1f} |")
    print(f"| check_drift (30 features + 2 prediction columns) | {c['check_drift_s']:.1f} |")
    print(f"| `monitor check` command, SQLite log | {c['cli_sqlite_s']:.1f} |")
    print(
        f"| `monitor check` command, Parquet (model run on every row) | {c['cli_parquet_s']:.1f} |"
    )
    if "serving" in results:
        print_serving(results["serving"])
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwritten: {RESULTS}")


if __name__ == "__main__":
    main()
