"""PR-check benchmark: the pipeline + report part of the pull-request check, timed.

Prints figures (not a test). Run from the project root:

    uv run python bench/pr_check.py [--repeats 3]

Scenarios, each in a throw-away copy of the template (a git repo whose `main` commit is
the base), with the commands the PR workflow runs (`make report` = `check`, `dvc repro`,
`report --base`), called directly so make/uv start-up is not counted:

  (a) docs-only PR, warm cache: no stage runs; the base comes from the run-cache.
  (b) params-only PR (train.random_forest.n_estimators): train + evaluate rerun.
  (c) cold cache: an empty DVC cache; the PR's pipeline runs in full and the base is
      rebuilt from scratch in its worktree.
  (d) obtaining the base model when cached: `worktree.obtain_base` alone (target <= 2 s).

Results also go to bench/results/pr_check.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import copy_template, edit_params, tool_env  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "pr_check.json"
TARGET_BASE_SECONDS = 2.0


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: a load-independent figure
    (the machine may be shared; wall time then overstates what an idle runner takes)."""
    own, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def sh(args: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> tuple[float, str]:
    env = tool_env(DVC_SITE_CACHE_DIR=str(cwd / ".dvc" / "tmp" / "site-cache"))
    started = time.perf_counter()
    done = subprocess.run(args, cwd=cwd, env=env, text=True, capture_output=True)
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        raise SystemExit(f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout + done.stderr


def commit(project: Path, message: str) -> str:
    sh(["git", "add", "-A"], project)
    sh(["git", "commit", "-q", "--allow-empty", "-m", message], project)
    return sh(["git", "rev-parse", "HEAD"], project)[1].strip()


def pr_check(project: Path, base: str) -> dict[str, Any]:
    """check + dvc repro + report --base: the pipeline+report part of the PR workflow."""
    cpu = cpu_seconds()
    check, _ = sh([sys.executable, "-m", "mlops_template", "check"], project)
    repro, log = sh([sys.executable, "-m", "dvc", "repro"], project)
    report, report_log = sh(
        [sys.executable, "-m", "mlops_template", "report", "--base", base, "--no-check-fresh"],
        project,
        ok=(0, 1),
    )
    base_line = re.search(
        r"ready in ([\d.]+)s: (\d+) stage\(s\) restored.*?, (\d+) run", report_log
    )
    gate = json.loads((project / "reports" / "pr" / "gate.json").read_text())
    return {
        "total_s": round(check + repro + report, 2),
        "total_cpu_s": round(cpu_seconds() - cpu, 2),
        "check_s": round(check, 2),
        "repro_s": round(repro, 2),
        "report_s": round(report, 2),
        "pr_stages_run": re.findall(r"Running stage '([^']+)'", log),
        "base_s": float(base_line.group(1)) if base_line else None,
        "base_stages_run": int(base_line.group(3)) if base_line else None,
        "gate_passed": gate["passed"],
    }


def branch(project: Path, name: str, start: str) -> None:
    sh(["git", "checkout", "-q", "-f", "-B", name, start], project)
    sh([sys.executable, "-m", "dvc", "checkout", "--quiet"], project)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of (a) and (d)")
    args = parser.parse_args()
    os.environ["DVC_NO_ANALYTICS"] = "1"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pr-") as tmp:
        work = Path(tmp)
        project = copy_template(work / "warm", dvc_cache=work / "cache")
        sh([sys.executable, "-m", "dvc", "repro"], project)
        base = commit(project, "base: reproduced")

        docs = []
        for i in range(args.repeats):
            branch(project, f"docs-{i}", base)
            with (project / "README.md").open("a") as readme:
                readme.write(f"\nA documentation change ({i}).\n")
            commit(project, f"docs {i}")
            docs.append(pr_check(project, base))
        results["a_docs_only_warm"] = docs

        branch(project, "params", base)
        edit_params(project, **{"train.random_forest.n_estimators": 51})
        commit(project, "params")
        results["b_params_only"] = pr_check(project, base)

        from mlops_template.worktree import obtain_base

        timings, cpu_times, statuses = [], [], []
        for _ in range(max(args.repeats, 3)):
            started, cpu = time.perf_counter(), cpu_seconds()
            found = obtain_base(base, project)
            timings.append(time.perf_counter() - started)
            cpu_times.append(cpu_seconds() - cpu)
            statuses.append((found.status, len(found.stages_run)))
        results["d_base_when_cached"] = {
            "median_s": round(statistics.median(timings), 2),
            "min_s": round(min(timings), 2),
            "median_cpu_s": round(statistics.median(cpu_times), 2),
            "runs_s": [round(t, 2) for t in timings],
            "status_and_stages_run": statuses,
        }

        cold = copy_template(work / "cold", dvc_cache=work / "cold-cache")
        cold_base = sh(["git", "rev-parse", "HEAD"], cold)[1].strip()  # never built
        edit_params(cold, **{"train.random_forest.n_estimators": 51})
        commit(cold, "params")
        results["c_cold_cache"] = pr_check(cold, cold_base)

    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_results(results)


def print_results(results: dict[str, Any]) -> None:
    def row(name: str, r: dict[str, Any]) -> None:
        print(
            f"{name:<28} total {r['total_s']:6.2f} s (cpu {r['total_cpu_s']:5.2f} s) = check "
            f"{r['check_s']:.2f} + repro "
            f"{r['repro_s']:.2f} + report {r['report_s']:.2f} | PR stages run "
            f"{len(r['pr_stages_run'])} | base {r['base_s']} s ({r['base_stages_run']} run)"
        )

    print("PR check, pipeline + report part (check, dvc repro, report --base):")
    docs = results["a_docs_only_warm"]
    for i, r in enumerate(docs):
        row(f"(a) docs-only, warm #{i + 1}", r)
    print(f"    median (a): {statistics.median(r['total_s'] for r in docs):.2f} s")
    row("(b) params-only", results["b_params_only"])
    row("(c) cold cache", results["c_cold_cache"])
    d = results["d_base_when_cached"]
    verdict = "OK" if d["median_s"] <= TARGET_BASE_SECONDS else "OVER TARGET"
    print(
        f"(d) base model when cached: median {d['median_s']:.2f} s, min {d['min_s']:.2f} s, "
        f"cpu {d['median_cpu_s']:.2f} s (target <= {TARGET_BASE_SECONDS} s wall: {verdict}); "
        f"runs {d['runs_s']}"
    )
    print(f"load average: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
