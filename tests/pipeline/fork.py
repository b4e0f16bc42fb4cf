"""A fork's first day: it edits params.yaml (a hyperparameter; another dataset) and
`make test` stays green (tests/pipeline/test_fork_*_change.py, one file per change so
that `make test`'s workers, which take whole files, run the two long cases side by side). Each case changes a fresh copy of the template, then runs its
`make test` with a PATH that has no uv (uv is bootstrapped into the copy's .tools/, as
on a fresh machine) on a subset: the template's fast tiers (which must not notice the
change) and the project checks (which must pass on the changed params and data). The
copy borrows this run's venv and node_modules: no second install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.helpers import (
    TEMPLATE_ROOT,
    VENV_BIN,
    copy_template,
    edit_params,
    link_venv,
    path_without,
    run,
)

SUBSET = '-m "not slow or project" -p no:cacheprovider -rA'
CHANGES: dict[str, dict[str, Any]] = {
    "hyperparameter": {
        "train.random_forest.n_estimators": 60,
        "train.random_forest.min_samples_leaf": 2,
    },
    "dataset": {"data.source": "sklearn:wine"},
}
PROJECT_CHECKS = [
    "test_params_yaml_is_valid_and_its_data_exists",
    "test_the_pipeline_reproduces_what_dvc_lock_records",
    "test_the_model_passes_its_own_gate",
    "test_the_api_answers_rows_of_the_projects_schema",
]
# pytest's last line: "==== 123 passed, 2 skipped in 45.6s ===="
PYTEST_SUMMARY = re.compile(r"^=+ .*\bin [\d.]+s\b.* =+$")
# Set by the outer `uv run` / pytest: the copy's make must find its own way.
NOT_INHERITED = (
    "UV",
    "VIRTUAL_ENV",
    "UV_RUN_RECURSION_DEPTH",
    "PYTEST_ADDOPTS",
    "PYTEST_XDIST_WORKER",
    "PYTEST_XDIST_WORKER_COUNT",
    "PYTEST_CURRENT_TEST",
    # set by an outer make (CI runs `make test`): a nested make would print
    # "Leaving directory ..." after pytest's summary and inherit the outer flags
    "MAKEFLAGS",
    "MFLAGS",
    "MAKELEVEL",
    "MAKEOVERRIDES",
)


def fresh_machine_env(shadow: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NOT_INHERITED}
    path = [p for p in env["PATH"].split(os.pathsep) if p and Path(p) != VENV_BIN]
    env["PATH"] = path_without("uv", shadow, os.pathsep.join(path))
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def make_test_stays_green_after(change: str, tmp_path: Path) -> None:
    """Copy the template, apply CHANGES[change] to params.yaml, commit, and run the copy's
    `make test` (the SUBSET) as on a fresh machine: it must pass, project checks included."""
    fork = copy_template(tmp_path / "fork")
    edit_params(fork, **CHANGES[change])
    run(["git", "commit", "-qam", f"my first change: {change}"], fork)
    link_venv(fork)
    (fork / "node_modules").symlink_to(TEMPLATE_ROOT / "node_modules", target_is_directory=True)
    env = fresh_machine_env(tmp_path / "no-uv")
    assert shutil.which("uv", path=env["PATH"]) is None

    def make(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["make", *args], cwd=fork, env=env, text=True, capture_output=True, timeout=1800
        )

    # the Makefile's own bootstrap (what `make install` does first without uv on PATH)
    boot = make(str(fork / ".tools" / "bin" / "uv"))
    assert boot.returncode == 0, boot.stdout + boot.stderr
    # -o: the borrowed environment is not re-synced (that would re-point its editable
    # install at the copy)
    done = make(
        "-o",
        ".venv/.synced",
        "-o",
        "node_modules/.installed",
        "test",
        f"PYTEST_ARGS={SUBSET}",
        # one process: the outer run's workers already take both cores
        "PYTEST_WORKERS=0",
    )
    summaries = [line for line in done.stdout.splitlines() if PYTEST_SUMMARY.match(line)]
    summary = summaries[-1] if summaries else ""
    assert done.returncode == 0, done.stdout[-12000:] + done.stderr[-3000:]
    assert summary and "failed" not in summary and "error" not in summary, done.stdout[-6000:]
    assert re.search(r"^=+ \d+ passed", summary), summary
    assert f"{fork / '.tools/bin/uv'} run --frozen --no-sync pytest" in done.stdout
    for check in PROJECT_CHECKS:  # ran on the changed params, not only the template's tests
        assert f"PASSED tests/project/test_project.py::{check}" in done.stdout, done.stdout[-6000:]
