"""Live-performance check on a large labelled log: `python bench/performance.py [--rows N]`.

Writes a prediction log as the API's logger does (requests of 1000 rows, two classes),
stores a label for every row, then times each part of `monitor performance`: storing the
labels, reading the log and the labels, the join, and the windows' metrics with their
bootstrap intervals (params.yaml's monitor.performance: 200 resamples). Prints seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_template.performance import (
    LABEL,
    join_labels,
    performance_by_window,
    read_labels,
    store_labels,
)
from mlops_template.predlog import PredictionLogger, read_log

CLASSES = ["no", "yes"]
REQUEST_ROWS = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--resamples", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    p = 1 / (1 + np.exp(-rng.normal(0, 2, args.rows)))
    truth = np.where(rng.random(args.rows) < p, "yes", "no")
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "predictions.sqlite"
        started = time.perf_counter()
        logger = PredictionLogger(db, classes=CLASSES, max_queue_rows=args.rows + 1)
        for number, begin in enumerate(range(0, args.rows, REQUEST_ROWS)):
            chunk = p[begin : begin + REQUEST_ROWS]
            logger.log(
                {"x": chunk.tolist()},
                np.where(chunk > 0.5, "yes", "no").tolist(),
                np.c_[1 - chunk, chunk],
                "v1.0.0",
                f"req-{number}",
                timestamp=1_779_926_400 + number,
            )
        logger.close(timeout=600)
        print(f"log written: {args.rows} rows in {time.perf_counter() - started:.1f} s")

        labels = pd.DataFrame(
            {
                "request_id": [f"req-{i // REQUEST_ROWS}" for i in range(args.rows)],
                "row": np.arange(args.rows) % REQUEST_ROWS,
                LABEL: truth,
            }
        )
        timings = {}
        t = time.perf_counter()
        stored = store_labels(db, labels)
        timings["store labels"] = time.perf_counter() - t
        assert stored.new == args.rows, stored
        t = time.perf_counter()
        log = read_log(db, features=[])
        timings["read log"] = time.perf_counter() - t
        t = time.perf_counter()
        known = read_labels(db, "classification")
        timings["read labels"] = time.perf_counter() - t
        t = time.perf_counter()
        joined = join_labels(log, known)
        timings["join"] = time.perf_counter() - t
        t = time.perf_counter()
        results = performance_by_window(
            joined.rows,
            "classification",
            {"v1.0.0": {"roc_auc": 0.86}},
            pd.Timedelta(hours=24),
            200,
            {"roc_auc": 0.05},
            resamples=args.resamples,
        )
        timings[f"metrics + {args.resamples} bootstrap resamples"] = time.perf_counter() - t
    assert len(joined.rows) == args.rows and len(results) == 1
    for name, seconds in timings.items():
        print(f"{name:>36}: {seconds:6.2f} s")
    print(
        f"{'performance check (all but storing)':>36}: {sum(timings.values()) - timings['store labels']:6.2f} s"
    )
    roc = next(m for m in results[0].metrics if m.name == "roc_auc")
    print(f"live roc_auc {roc.value:.4f} [{roc.low:.4f}, {roc.high:.4f}] on {args.rows} rows")


if __name__ == "__main__":
    main()
