"""Hyperparameter search as DVC experiments: which trials to run, and how they rank.

Pure functions only; `commands/sweep.py` runs DVC. A trial is a mapping of dotted
train.* keys to values (`sweep.space` in params.yaml, validated by config.py), queued as
`dvc exp run --queue -S key=value ... --name sweep-<n>`. The results are read back from
`dvc exp show --json`, whose shape (DVC 3.x) is a list of commits::

    [{"rev": "workspace", "name": None, "data": {...}, "experiments": None},
     {"rev": "<sha>", "name": "main", "data": {"params": ..., "metrics": ...},
      "experiments": [{"name": "sweep-1",
                       "executor": {"state": "success" | "failed" | "queued" | ...} | None,
                       "revs": [{"rev": ..., "name": "sweep-1", "error": None | {...},
                                 "data": {"params": {"params.yaml": {"data": {...}}},
                                          "metrics": {"eval/metrics.json":
                                                      {"data": {"roc_auc": ...}}}}}]}]}]

A failed experiment still carries metrics there: its parent's (DVC copies the baseline's
files into the experiment commit), so a failed trial is never ranked by them.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlops_template import paths
from mlops_template.config import ModelName, SweepParams, SweepValue
from mlops_template.evaluate import (
    CLASSIFICATION_METRICS,
    HIGHER_IS_BETTER,
    REGRESSION_METRICS,
)

NAME_PREFIX = "sweep-"
_NAME = re.compile(rf"^{re.escape(NAME_PREFIX)}(\d+)$")
# the train.* sections that hold one built-in estimator's settings
ESTIMATORS = typing.get_args(ModelName)
# executor states of `dvc exp show --json` that are not finished yet
PENDING_STATES = ("queued", "running")

Trial = dict[str, SweepValue]


class SweepError(ValueError):
    """A sweep that cannot run or be read (the message says what to change)."""


# ------------------------------------------------------------------ trials


def grid(space: Mapping[str, Sequence[SweepValue]]) -> list[Trial]:
    """Every combination, in a stable order: keys as listed, the last key varying fastest."""
    keys = list(space)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*space.values())]


def trials(sweep: SweepParams) -> list[Trial]:
    """The trials of `sweep`: the whole grid, or (random) `sweep.trials` distinct points of
    it drawn with `sweep.seed` (at most the grid's size), kept in grid order."""
    if not sweep.space:
        raise SweepError(
            "sweep.space is empty: list the train.* keys to search and their values, e.g. "
            "train.random_forest.n_estimators: [100, 300]"
        )
    points = grid(sweep.space)
    if sweep.method == "random":
        count = min(sweep.trials, len(points))
        chosen = sorted(random.Random(sweep.seed).sample(range(len(points)), count))
        points = [points[i] for i in chosen]
    return points


def keys_without_effect(space: Mapping[str, Any], model: str) -> list[str]:
    """Keys of another estimator's section than `train.model`'s: every trial would train
    the same model (unless train.model itself is swept)."""
    if "train.model" in space:
        return []
    return [
        key
        for key in space
        if (parts := key.split("."))[1:2] and parts[1] in ESTIMATORS and parts[1] != model
    ]


def override_value(value: SweepValue) -> str:
    """A value as `dvc exp run -S key=<value>` parses it (Hydra grammar: JSON scalars are
    read back as the same type; a string is quoted so "1.0" or "null" stay strings)."""
    return json.dumps(value)


def override_args(trial: Trial) -> list[str]:
    return [arg for key, value in trial.items() for arg in ("-S", f"{key}={override_value(value)}")]


def trial_names(count: int, existing: Iterable[str]) -> list[str]:
    """sweep-<n> names continuing after the highest existing one (DVC refuses a name that
    an experiment of the same commit already has)."""
    numbers = [int(m.group(1)) for name in existing if (m := _NAME.match(name or ""))]
    start = max(numbers, default=0) + 1
    return [f"{NAME_PREFIX}{n}" for n in range(start, start + count)]


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class SweepRow:
    """One experiment of the sweep as `dvc exp show` recorded it."""

    name: str
    state: str  # success | failed | queued | running
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    rank: int | None = None  # 1 = best; None: not ranked (failed, pending, no metric)
    rev: str | None = None


def _dotted(tree: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def _metrics(data: Mapping[str, Any]) -> dict[str, float]:
    """The numeric top-level values of eval/metrics.json (else of any metrics file)."""
    files = data.get("metrics") or {}
    preferred = files.get(paths.METRICS.as_posix())
    chosen = [preferred] if preferred else list(files.values())
    found: dict[str, float] = {}
    for entry in chosen:
        for name, value in ((entry or {}).get("data") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                found.setdefault(name, float(value))
    return found


def _state(experiment: Mapping[str, Any], rev: Mapping[str, Any]) -> str:
    executor = experiment.get("executor") or {}
    state = executor.get("state")
    if state:
        return str(state)
    # finished experiments lose their executor record (e.g. after `dvc queue remove`)
    return "failed" if rev.get("error") else "success"


def baseline_entry(shown: Sequence[Mapping[str, Any]]) -> Mapping[str, Any]:
    """The commit entry (not the workspace) of `dvc exp show --json`: HEAD's."""
    for entry in shown:
        if entry.get("rev") != "workspace":
            return entry
    raise SweepError("`dvc exp show --json` lists no commit (is this a git repository?)")


def sweep_rows(shown: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> list[SweepRow]:
    """The sweep's experiments (named sweep-<n>) of HEAD, unranked, in trial order."""
    rows = []
    for experiment in baseline_entry(shown).get("experiments") or []:
        for rev in experiment.get("revs") or []:
            name = rev.get("name") or experiment.get("name") or ""
            if not _NAME.match(name):
                continue
            state = _state(experiment, rev)
            data = rev.get("data") or {}
            params = (data.get("params") or {}).get(paths.PARAMS.as_posix()) or {}
            values = {key: _dotted(params.get("data"), key) for key in keys}
            # a failed or unfinished experiment carries its parent's metrics: none shown
            metrics = _metrics(data) if state == "success" else {}
            rows.append(SweepRow(name, state, values, metrics, rev=rev.get("rev")))
    return sorted(rows, key=lambda r: int(_NAME.match(r.name).group(1)))  # type: ignore[union-attr]


def rank(rows: Sequence[SweepRow], metric: str) -> list[SweepRow]:
    """Successful trials best first by `metric` (its direction from HIGHER_IS_BETTER; ties
    keep trial order) and numbered 1..n; then the others unranked: failed, pending, and
    successful ones without the metric (e.g. roc_auc of a regression)."""
    higher = HIGHER_IS_BETTER[metric]
    scored = [r for r in rows if r.state == "success" and metric in r.metrics]
    succeeded = [r for r in rows if r.state == "success"]
    if succeeded and not scored:
        recorded = sorted({m for r in succeeded for m in r.metrics})
        raise SweepError(
            f"sweep.metric: {metric!r} is not in the trials' metrics (they have "
            f"{', '.join(recorded) or 'none'}); pick one of them"
        )
    ordered = sorted(scored, key=lambda r: -r.metrics[metric] if higher else r.metrics[metric])
    ranked = [
        SweepRow(r.name, r.state, r.params, r.metrics, rank=i, rev=r.rev)
        for i, r in enumerate(ordered, start=1)
    ]
    return ranked + [r for r in rows if r not in scored]


def rank_experiments(
    shown: Sequence[Mapping[str, Any]], metric: str, keys: Sequence[str]
) -> list[SweepRow]:
    """`dvc exp show --json` -> the sweep's rows, ranked by `metric`."""
    return rank(sweep_rows(shown, keys), metric)


def best(rows: Sequence[SweepRow]) -> SweepRow:
    for row in rows:
        if row.rank == 1:
            return row
    states = ", ".join(f"{r.name}: {r.state}" for r in rows) or "no sweep experiments"
    raise SweepError(f"no successful trial to apply ({states}); run `make sweep` first")


def headline_metrics(metric: str) -> list[str]:
    """The ranking metric first, then the other metrics of its task."""
    family = REGRESSION_METRICS if metric in REGRESSION_METRICS else CLASSIFICATION_METRICS
    return [metric, *(m for m in family if m != metric)]


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return str(value)


def format_table(rows: Sequence[SweepRow], metric: str, keys: Sequence[str]) -> str:
    """A Markdown table: rank, experiment, state, the swept params, `metric` (marked with
    its direction) and the other headline metrics of the task; failed and pending trials
    last, with "-" for their metrics."""
    shown_metrics = [
        m for m in headline_metrics(metric) if m == metric or any(m in r.metrics for r in rows)
    ]
    arrow = {m: "↑" if HIGHER_IS_BETTER[m] else "↓" for m in shown_metrics}
    header = ["rank", "experiment", "state", *keys, *(f"{m} {arrow[m]}" for m in shown_metrics)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [
            str(row.rank) if row.rank is not None else "-",
            row.name,
            row.state,
            *(_cell(row.params.get(k)) for k in keys),
            *(_cell(row.metrics[m]) if m in row.metrics else "-" for m in shown_metrics),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def report(rows: Sequence[SweepRow], metric: str, keys: Sequence[str], baseline: str) -> str:
    """reports/sweep.md: the table with a title and how to apply the best trial."""
    ranked = [r for r in rows if r.rank is not None]
    failed = [r.name for r in rows if r.state == "failed"]
    direction = "higher" if HIGHER_IS_BETTER[metric] else "lower"
    lines = [
        f"# Hyperparameter sweep on {baseline}",
        "",
        f"{len(rows)} trials: {len(ranked)} ranked by {metric} ({direction} is better)"
        + (f", {len(failed)} failed ({', '.join(failed)}: `dvc queue logs NAME`)" if failed else "")
        + ".",
        "",
        format_table(rows, metric, keys),
    ]
    if ranked:
        lines.append(
            f"Apply the best ({ranked[0].name}): `make sweep-apply`, then commit params.yaml "
            "and dvc.lock."
        )
    return "\n".join(lines) + "\n"
