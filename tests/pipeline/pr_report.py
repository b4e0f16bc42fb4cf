"""Running `python -m mlops_template report` on a project's git history, and reading what
it wrote (shared by the classification and the regression PR-report tests)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import run


def report(project: Path, base: str, **env: str):
    return run(
        ["python", "-m", "mlops_template", "report", "--base", base], project, check=False, **env
    )


def commit_all(project: Path, message: str) -> str:
    run(["git", "add", "-A"], project)
    run(["git", "commit", "-q", "--allow-empty", "-m", message], project)
    return run(["git", "rev-parse", "HEAD"], project).stdout.strip()


def branch_from(project: Path, name: str, start: str) -> None:
    run(["git", "checkout", "-q", "-f", "-B", name, start], project)
    run(["dvc", "checkout", "--quiet"], project)  # the outputs of START, from the cache


def outputs(project: Path) -> tuple[str, dict, dict]:
    out = project / "reports" / "pr"
    return (
        (out / "report.md").read_text(),
        json.loads((out / "gate.json").read_text()),
        json.loads((out / "comparison.json").read_text()),
    )
