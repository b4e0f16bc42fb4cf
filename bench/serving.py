"""Serving benchmark: the template's API vs in-process inference vs `mlflow models serve`.

Prints figures (not a test). Needs a built project (`make run`). Run from the project root:

    uv run python bench/serving.py [--rounds 3] [--duration 4] [--skip-mlflow]

What it measures, on loopback, for each server (1 uvicorn worker each, request validation
on in both: ours validates against data/schema.json, mlflow against the model signature):
single-row latency p50/p99, 1,000-row batch latency (records, and columnar for ours),
requests/s at concurrency 1 and 8, start-up time and resident memory. In-process: sklearn
`predict_proba` and onnxruntime, with and without our request validation. Rounds run in
rotation (ours, mlflow, ours, ...) and the medians are reported.

mlflow is not a dependency of the project (it would constrain the whole lock): it is
installed into a throw-away venv under bench/.cache/ (git-ignored) with the project's
exact scikit-learn/skops/numpy versions, and the sklearn model (models/model.skops) is
saved there as an mlflow model with a signature (so mlflow validates inputs too) and
`predict_proba` as its predict function (the same work our API does).

The HTTP client is a minimal keep-alive HTTP/1.1 client on raw sockets with prebuilt
requests, so the client's own cost (it shares the 2 cores) stays small and equal for
both servers; every response's status is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path.cwd()
CACHE = Path(__file__).resolve().parent / ".cache"
RESULTS = Path(__file__).resolve().parent / "results" / "serving.json"
BATCH_ROWS = 1000
TARGET_P50_MS = 2.0
TARGET_RPS_RATIO = 25.0


# ---------------------------------------------------------------------------- client


class Http:
    """Keep-alive HTTP/1.1 over one socket: send prebuilt bytes, read one response."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    @staticmethod
    def request(method: str, path: str, body: bytes = b"") -> bytes:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    def _fill(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def send(self, raw: bytes) -> tuple[int, bytes]:
        self.sock.sendall(raw)
        while b"\r\n\r\n" not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(b":")
            headers[key.strip().lower()] = value.strip()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = b""
            while True:
                while b"\r\n" not in self.buffer:
                    self._fill()
                size_line, _, self.buffer = self.buffer.partition(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                while len(self.buffer) < size + 2:
                    self._fill()
                body, self.buffer = body + self.buffer[:size], self.buffer[size + 2 :]
                if size == 0:
                    return status, body
        length = int(headers.get(b"content-length", b"0"))
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def close(self) -> None:
        self.sock.close()


def latencies_ms(port: int, raws: list[bytes], n: int) -> list[float]:
    client = Http(port)
    out = []
    try:
        for i in range(n):
            started = time.perf_counter()
            status, body = client.send(raws[i % len(raws)])
            out.append((time.perf_counter() - started) * 1e3)
            if status != 200:
                raise RuntimeError(f"HTTP {status}: {body[:300]!r}")
    finally:
        client.close()
    return out


def throughput(port: int, raws: list[bytes], clients: int, seconds: float) -> float:
    """Requests/s with `clients` concurrent keep-alive connections, each sending in a loop."""
    count, elapsed = load_phase(port, raws, clients, seconds)
    return count / elapsed


def load_phase(port: int, raws: list[bytes], clients: int, seconds: float) -> tuple[int, float]:
    """(requests answered 200, elapsed seconds) with `clients` keep-alive connections."""
    counts = [0] * clients
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    def worker(index: int) -> None:
        client = Http(port)
        i = index
        try:
            while time.perf_counter() < deadline:
                status, body = client.send(raws[i % len(raws)])
                if status != 200:
                    errors.append(f"HTTP {status}: {body[:200]!r}")
                    return
                counts[index] += 1
                i += clients
        finally:
            client.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(errors[0])
    return sum(counts), time.perf_counter() - started


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (mlflow runs two)."""
    total = 0
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
        for child in children:
            grand = Path(f"/proc/{child}/task/{child}/children").read_text().split()
            pids += [int(g) for g in grand]
    except OSError:
        pass
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Server:
    def __init__(self, name: str, args: list[str], port: int, health: str, env: dict) -> None:
        self.name, self.port, self.health = name, port, health
        CACHE.mkdir(parents=True, exist_ok=True)
        self.log = CACHE / f"{name}.log"
        started = time.perf_counter()
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                args,
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.startup_s = self._wait_ready(started)
        self.rss_mb = rss_mb(self.process.pid)

    def _wait_ready(self, started: float, timeout: float = 180) -> float:
        raw = Http.request("GET", self.health)
        while time.perf_counter() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited; log: {self.log}")
            try:
                client = Http(self.port)
                status, _ = client.send(raw)
                client.close()
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; log: {self.log}")

    def stop(self) -> None:
        # The server runs in its own session: signal its process group only.
        with_group = os.getpgid(self.process.pid)
        os.killpg(with_group, signal.SIGTERM)
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(with_group, signal.SIGKILL)
            self.process.wait()


def mlflow_env(sklearn_version: str, skops_version: str, numpy_version: str) -> Path:
    venv = CACHE / "mlflow-venv"
    python = venv / "bin" / "python"
    uv = shutil.which("uv")
    if uv is None:
        raise RuntimeError("uv is needed to build the throw-away mlflow environment")
    if not python.exists():
        subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True)
    pins = [
        "mlflow",
        f"scikit-learn=={sklearn_version}",
        f"skops=={skops_version}",
        f"numpy=={numpy_version}",
    ]
    subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *pins], check=True)
    return venv


SAVE_MLFLOW_MODEL = """
import sys, pandas as pd, skops.io as sio, mlflow
from mlflow.models import infer_signature
skops_path, test_path, out, features = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
data = open(skops_path, "rb").read()
trusted = sio.get_untrusted_types(data=data)
model = sio.loads(data, trusted=trusted)
x = pd.read_parquet(test_path)[features]
mlflow.sklearn.save_model(
    model, out, signature=infer_signature(x, model.predict_proba(x)),
    pyfunc_predict_fn="predict_proba", skops_trusted_types=trusted,
)
"""


def mlflow_model(venv: Path, features: list[str], skops_sha: str) -> Path:
    out = CACHE / f"mlflow-model-{skops_sha[:16]}"
    if not (out / "MLmodel").exists():
        shutil.rmtree(out, ignore_errors=True)
        script = CACHE / "save_mlflow_model.py"
        script.write_text(SAVE_MLFLOW_MODEL)
        subprocess.run(
            [
                str(venv / "bin" / "python"),
                str(script),
                str(ROOT / "models/model.skops"),
                str(ROOT / "data/split/test.parquet"),
                str(out),
                ",".join(features),
            ],
            check=True,
            env=quiet_env(venv),
        )
    return out


def quiet_env(venv: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if venv is not None:
        # mlflow starts `uvicorn` through the shell: its own venv must come first on PATH.
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VIRTUAL_ENV"] = str(venv)
    env.update(
        {
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "DVC_NO_ANALYTICS": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


# ------------------------------------------------------------------------ in process


def timed_ms(fn: Callable[[], Any], n: int) -> float:
    fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1e3)
    return statistics.median(samples)


def in_process(frame: Any, rows: list[dict], batch: list[dict]) -> dict[str, float]:
    from mlops_template import serve
    from mlops_template.config import load_params
    from mlops_template.features import feature_frame
    from mlops_template.files import read_json
    from mlops_template.train import load_skops

    schema = read_json(ROOT / "data/schema.json")
    params = load_params(ROOT / "params.yaml").serve
    contract = serve.build_contract(schema, params)
    model = serve.load_model(ROOT, contract, params, "bench")
    pipeline = load_skops(ROOT / "models/model.skops")
    one = feature_frame(frame.iloc[:1], schema)
    many = feature_frame(frame.sample(BATCH_ROWS, replace=True, random_state=0), schema)
    body_one = json.dumps(rows[:1]).encode()
    body_many = json.dumps(batch).encode()
    body_cols = json.dumps({k: [r[k] for r in batch] for k in contract.features}).encode()

    def onnx(body: bytes, parse: Callable) -> Callable[[], Any]:
        return lambda: model.predict(serve.model_inputs(contract, parse(contract, body)))

    fixed_one = serve.model_inputs(contract, serve.parse_records(contract, body_one))
    fixed_many = serve.model_inputs(contract, serve.parse_records(contract, body_many))
    return {
        "sklearn_1_row_ms": timed_ms(lambda: pipeline.predict_proba(one), 200),
        "sklearn_1000_rows_ms": timed_ms(lambda: pipeline.predict_proba(many), 20),
        "onnx_1_row_ms": timed_ms(lambda: model.predict(fixed_one), 2000),
        "onnx_1000_rows_ms": timed_ms(lambda: model.predict(fixed_many), 100),
        "onnx_validated_1_row_ms": timed_ms(onnx(body_one, serve.parse_records), 2000),
        "onnx_validated_1000_records_ms": timed_ms(onnx(body_many, serve.parse_records), 50),
        "onnx_validated_1000_columns_ms": timed_ms(onnx(body_cols, serve.parse_columns), 50),
    }


# ---------------------------------------------------------------------------------- main


def measure(
    server: Server,
    single: list[bytes],
    batch: bytes,
    batch_columns: bytes | None,
    args: argparse.Namespace,
) -> dict[str, float]:
    lat = latencies_ms(server.port, single, args.latency_requests)
    out = {
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "batch_1000_p50_ms": float(
            np.median(latencies_ms(server.port, [batch], args.batch_requests))
        ),
        "rps_1": throughput(server.port, single, 1, args.duration),
        "rps_8": throughput(server.port, single, 8, args.duration),
    }
    if batch_columns is not None:
        out["batch_1000_columns_p50_ms"] = float(
            np.median(latencies_ms(server.port, [batch_columns], args.batch_requests))
        )
    return out


def median_of(rounds: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per req/s figure")
    parser.add_argument("--latency-requests", type=int, default=1000)
    parser.add_argument("--batch-requests", type=int, default=20)
    parser.add_argument("--skip-mlflow", action="store_true")
    args = parser.parse_args()
    load_at_start = list(os.getloadavg())

    import pandas as pd
    import sklearn
    import skops

    from mlops_template.files import read_json

    schema = read_json(ROOT / "data/schema.json")
    features = [f["name"] for f in schema["features"]]
    frame = pd.read_parquet(ROOT / "data/split/test.parquet")
    rows = json.loads(frame[features].to_json(orient="records"))
    batch = [rows[i % len(rows)] for i in range(BATCH_ROWS)]
    train_info = read_json(ROOT / "models/train_info.json")

    ours_single = [Http.request("POST", "/predict", json.dumps([r]).encode()) for r in rows]
    ours_batch = Http.request("POST", "/predict", json.dumps(batch).encode())
    ours_columns = Http.request(
        "POST",
        "/predict/columns",
        json.dumps({k: [r[k] for r in batch] for k in features}).encode(),
    )

    def split_payload(records: list[dict]) -> bytes:
        return json.dumps(
            {
                "dataframe_split": {
                    "columns": features,
                    "data": [[r[k] for k in features] for r in records],
                }
            }
        ).encode()

    mlflow_single = [Http.request("POST", "/invocations", split_payload([r])) for r in rows]
    mlflow_batch = Http.request("POST", "/invocations", split_payload(batch))

    print(f"in-process ({len(rows)} test rows, {BATCH_ROWS}-row batches) ...", flush=True)
    local = in_process(frame, rows, batch)

    servers: dict[str, Callable[[], Server]] = {}
    port = free_port()
    servers["ours"] = lambda: Server(
        "ours",
        [sys.executable, "-m", "mlops_template", "serve", "--port", str(port)],
        port,
        "/health",
        quiet_env(),
    )
    if not args.skip_mlflow:
        print("preparing mlflow in bench/.cache (throw-away venv) ...", flush=True)
        import numpy

        venv = mlflow_env(sklearn.__version__, skops.__version__, numpy.__version__)
        model_dir = mlflow_model(venv, features, train_info["sha256"]["model.skops"])
        mlflow_port = free_port()
        servers["mlflow"] = lambda: Server(
            "mlflow",
            [
                str(venv / "bin" / "mlflow"),
                "models",
                "serve",
                "-m",
                str(model_dir),
                "-h",
                "127.0.0.1",
                "-p",
                str(mlflow_port),
                "-w",
                "1",
                "--env-manager",
                "local",
            ],
            mlflow_port,
            "/health",
            quiet_env(venv),
        )

    results: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
    classes = [str(c) for c in schema["classes"]]
    labels: dict[str, list[str]] = {}
    for round_no in range(args.rounds):
        for name, start in servers.items():
            print(f"round {round_no + 1}/{args.rounds}: {name} ...", flush=True)
            server = start()
            try:
                if name == "ours":
                    figures = measure(server, ours_single, ours_batch, ours_columns, args)
                    labels[name] = batch_labels(server, ours_batch, classes)
                else:
                    figures = measure(server, mlflow_single, mlflow_batch, None, args)
                    labels[name] = batch_labels(server, mlflow_batch, classes)
                figures["startup_s"] = server.startup_s
                figures["rss_mb"] = server.rss_mb
                results[name].append(figures)
            finally:
                server.stop()

    summary = {name: median_of(rounds) for name, rounds in results.items()}
    report(summary, local, args)
    if "mlflow" in labels:
        same = np.mean(np.asarray(labels["ours"]) == np.asarray(labels["mlflow"]))
        local["labels_equal_to_mlflow_fraction"] = float(same)
        print(
            f"\nSame predicted class as mlflow (sklearn) on the {BATCH_ROWS}-row batch: {same:.1%}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "servers": summary,
                "rounds": results,
                "in_process": local,
                "load_average_at_start": load_at_start,
                "load_average_at_end": list(os.getloadavg()),
            },
            indent=2,
        )
        + "\n"
    )
    print(f"\nwritten: {RESULTS}")


def batch_labels(server: Server, raw: bytes, classes: list[str]) -> list[str]:
    """The predicted class per row of the batch (mlflow answers probabilities only)."""
    client = Http(server.port)
    status, body = client.send(raw)
    client.close()
    if status != 200:
        raise RuntimeError(f"{server.name}: HTTP {status}: {body[:300]!r}")
    answer = json.loads(body)
    if "probabilities" in answer:
        return answer["predictions"]
    return [classes[int(np.argmax(p))] for p in answer["predictions"]]


def report(summary: dict[str, dict[str, float]], local: dict[str, float], args: Any) -> None:
    def row(name: str, f: dict[str, float]) -> str:
        cols = f.get("batch_1000_columns_p50_ms")
        batch = f"{f['batch_1000_p50_ms']:.1f} ms" + (f" ({cols:.1f} ms columnar)" if cols else "")
        return (
            f"| {name} | {f['p50_ms']:.2f} / {f['p99_ms']:.2f} ms | {batch} | "
            f"{f['rps_1']:.0f} / {f['rps_8']:.0f} | {f['startup_s']:.1f} s | {f['rss_mb']:.0f} MB |"
        )

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\nServing benchmark (medians of {args.rounds} rounds; {os.cpu_count()} CPUs, loopback; "
        f"load average now {load}: other work on the machine inflates every figure)"
    )
    print("\n| option | 1-row p50 / p99 | 1000-row p50 | req/s at 1 / 8 clients | start-up | RSS |")
    print("|---|---|---|---|---|---|")
    labels = {
        "ours": "this API (FastAPI + onnxruntime, validated)",
        "mlflow": "mlflow models serve",
    }
    for name, figures in summary.items():
        print(row(labels[name], figures))
    print("\nIn process (median per call):")
    for key, value in local.items():
        print(f"  {key:34s} {value:8.3f} ms")
    ours = summary["ours"]
    print("\nTargets:")
    p50_ok = ours["p50_ms"] <= TARGET_P50_MS
    print(
        f"  single-row p50 {ours['p50_ms']:.2f} ms <= {TARGET_P50_MS} ms: {'MET' if p50_ok else 'MISSED'}"
    )
    if "mlflow" in summary:
        ratio = ours["rps_8"] / summary["mlflow"]["rps_8"]
        ok = ratio >= TARGET_RPS_RATIO
        print(
            f"  req/s at 8 clients {ours['rps_8']:.0f} vs mlflow {summary['mlflow']['rps_8']:.0f}: "
            f"{ratio:.1f}x (target {TARGET_RPS_RATIO:.0f}x): {'MET' if ok else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
