"""A model registry in a temporary git repository, for the history page's tests.

Annotated tags as `registry register/promote/rollback` make them (GTO's format):
`model@v1.0.0` .. `model@v1.2.0` with `registry.registration_message` (their metrics),
then prod assigned to v1.0.0, v1.1.0, v1.2.0, a rollback (`model#prod!#4` unassigns
v1.2.0, `model#prod#5` assigns v1.1.0 again): prod is v1.1.0. Plus sample monitor
reports in the formats `monitor performance` and `monitor check` write.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from mlops_template.registry import registration_message

ROOT = Path(__file__).resolve().parents[1]
VERSIONS = {
    "v1.0.0": {"roc_auc": 0.81, "balanced_accuracy": 0.71, "accuracy": 0.75},
    "v1.1.0": {"roc_auc": 0.86, "balanced_accuracy": 0.77, "accuracy": 0.79},
    "v1.2.0": {"roc_auc": 0.84, "balanced_accuracy": 0.74, "accuracy": 0.78},
}
# (tag, version it points at) in creation order
STAGE_TAGS = [
    ("model#prod#1", "v1.0.0"),
    ("model#prod#2", "v1.1.0"),
    ("model#prod#3", "v1.2.0"),
    ("model#prod!#4", "v1.2.0"),
    ("model#prod#5", "v1.1.0"),
]
PROD = "v1.1.0"
START = 1_780_000_000  # tag times: one minute apart from here


def git(root: Path, *args: str, when: int | None = None) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@example.com",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@example.com",
    )
    if when is not None:
        env["GIT_COMMITTER_DATE"] = env["GIT_AUTHOR_DATE"] = f"{when} +0000"
    return subprocess.run(
        ["git", "-c", "core.hooksPath=/dev/null", "-c", "tag.gpgSign=false", *args],
        cwd=root,
        env=env,
        check=True,
        text=True,
        capture_output=True,
    ).stdout.strip()


def make_registry(
    root: Path,
    versions: dict[str, dict[str, float]] | None = None,
    stage_tags: list[tuple[str, str]] | None = None,
    name: str = "model",
) -> dict[str, str]:
    """The repository at ROOT (with the template's params.yaml); {version: commit}."""
    versions = VERSIONS if versions is None else versions
    stage_tags = STAGE_TAGS if stage_tags is None else stage_tags
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "params.yaml", root / "params.yaml")
    git(root, "init", "-q", "-b", "main")
    commits = {}
    when = START
    for version, metrics in versions.items():
        (root / "version.txt").write_text(version)
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", f"train {version}", when=when)
        commits[version] = git(root, "rev-parse", "HEAD")
        message = registration_message(name, version, metrics, {"model.onnx": "ab" * 32}, "d1")
        git(root, "tag", "-a", f"{name}@{version}", "-m", message, commits[version], when=when)
        when += 60
    for tag, version in stage_tags:
        git(root, "tag", "-a", tag, "-m", f"stage {tag}", commits[version], when=when)
        when += 60
    return commits


def window(version: str, start: str, end: str, live: float, test: float, alarm: bool = False):
    metric = {
        "live": live,
        "low": live - 0.03,
        "high": live + 0.03,
        "test": test,
        "drop": test - live,
        "max_drop": 0.05,
        "alarm": alarm,
    }
    return {
        "model_version": version,
        "start": start,
        "end": end,
        "labelled_rows": 400,
        "judged": True,
        "alarm": alarm,
        "metrics": {
            "roc_auc": metric,
            "balanced_accuracy": metric | {"live": live - 0.1, "low": live - 0.13},
            "accuracy": metric | {"max_drop": None, "alarm": False},
            "log_loss": metric | {"max_drop": None, "alarm": False, "live": 0.4},
        },
    }


def performance_report() -> dict[str, Any]:
    return {
        "status": "drop",
        "reasons": [],
        "created_at": "2026-06-04T00:00:00+00:00",
        "windows": [
            window("v1.1.0", "2026-06-01T00:00:00+00:00", "2026-06-02T00:00:00+00:00", 0.85, 0.86),
            window(
                "v1.2.0",
                "2026-06-02T00:00:00+00:00",
                "2026-06-03T00:00:00+00:00",
                0.70,
                0.84,
                alarm=True,
            ),
            window("v1.1.0", "2026-06-03T00:00:00+00:00", "2026-06-04T00:00:00+00:00", 0.84, 0.86),
        ],
    }


def drift_report(until: str, psi: float, status: str = "ok") -> dict[str, Any]:
    return {
        "status": status,
        "drift": status == "drift",
        "rows": {"reference": 1000, "current": 500},
        "drifted_features": ["age"] if status == "drift" else [],
        "features": [
            {"name": "age", "psi": psi, "p_adjusted": 0.5, "drifted": status == "drift"},
            {"name": "income", "psi": psi / 2, "p_adjusted": 0.9, "drifted": False},
        ],
        "params": {"psi_threshold": 0.2},
        "source": "logs/predictions.sqlite",
        "window": {"since": None, "until": until},
        "created_at": until,
    }


def write_reports(root: Path) -> None:
    monitor = root / "reports" / "monitor"
    monitor.mkdir(parents=True, exist_ok=True)
    (monitor / "performance.json").write_text(json.dumps(performance_report()))
    (monitor / "drift.json").write_text(
        json.dumps(drift_report("2026-06-03T00:00:00+00:00", 0.35, "drift"))
    )
    (monitor / "drift-earlier.json").write_text(
        json.dumps(drift_report("2026-06-01T00:00:00+00:00", 0.05))
    )


class Elements(HTMLParser):
    """Start tags with their attributes, and the text of the document."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.tags
            if t == tag and all(a.get(k.rstrip("_")) == v for k, v in attrs.items())
        ]
