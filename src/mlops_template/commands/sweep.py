"""`sweep run | show | apply`: hyperparameter search (params.yaml `sweep:`) as DVC
experiments.

`run` queues one experiment per trial (`dvc exp run --queue -S key=value --name
sweep-<n>`) and runs the queue (`dvc exp run --run-all -j 1`: a celery worker runs each in
a temporary copy of the repository), logging each trial as it finishes, then prints the
ranked table and writes it to reports/sweep.md (the workers' output: reports/sweep.log).
`show` prints the table again; `apply [NAME]` brings the best trial (or NAME) into the
workspace with `dvc exp apply`: its params.yaml, dvc.lock and outputs, to commit.

A queued experiment is built from git: committed files plus the workspace's changes to
tracked (or staged) files. Untracked files are not in it, so `run` names them first.
Exit codes: 0 = done (some trials may have failed: they are listed); 2 = user error (bad
or empty sweep section, every trial failed, unknown NAME, DVC refused).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import typer

from mlops_template.commands.common import EXIT_USER_ERROR, params, user_errors
from mlops_template.files import write_text
from mlops_template.log import get_logger

logger = get_logger("sweep")

SWEEP_MD = Path("reports/sweep.md")
SWEEP_LOG = Path("reports/sweep.log")
sweep_app = typer.Typer(
    help="Hyperparameter search (params.yaml sweep:) as queued DVC experiments.",
    no_args_is_help=True,
)
_STARTED = re.compile(r"^Reproducing experiment '([^']+)'")
_FAILED = re.compile(r"^ERROR: ")


class DvcError(RuntimeError):
    """A DVC command that failed: its message is DVC's own."""


@contextlib.contextmanager
def sweep_errors() -> Iterator[None]:
    from mlops_template.sweep import SweepError

    try:
        with user_errors():
            yield
    except (SweepError, DvcError) as exc:
        logger.error("%s", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None


def _env() -> dict[str, str]:
    return dict(os.environ, DVC_NO_ANALYTICS="1", ITERATIVE_DO_NOT_TRACK="1")


def dvc(*args: str) -> str:
    """Run `dvc ARGS` (this interpreter's), return stdout; DVC's error -> DvcError."""
    done = subprocess.run(
        [sys.executable, "-m", "dvc", *args], env=_env(), capture_output=True, text=True
    )
    if done.returncode != 0:
        message = "\n".join(
            line for line in (done.stderr + done.stdout).splitlines() if line.strip()
        )
        raise DvcError(f"`dvc {' '.join(args)}` failed: {message[-2000:]}")
    return done.stdout


def exp_show() -> list[dict[str, Any]]:
    shown: list[dict[str, Any]] = json.loads(dvc("exp", "show", "--json"))
    return shown


def _git_lines(*args: str) -> list[str]:
    done = subprocess.run(["git", *args], capture_output=True, text=True)
    return done.stdout.splitlines() if done.returncode == 0 else []


def _warn_about_workspace() -> None:
    """Queued trials are built from git: say what they will and will not contain."""
    status = _git_lines("status", "--porcelain", "--untracked-files=all")
    untracked = [line[3:] for line in status if line.startswith("??")]
    changed = [line[3:] for line in status if not line.startswith("??")]
    if untracked:
        logger.warning(
            "%d untracked file(s) will be missing from every trial (`git add` them to "
            "include them): %s",
            len(untracked),
            ", ".join(untracked[:10]) + (" ..." if len(untracked) > 10 else ""),
        )
    if changed:
        logger.info("uncommitted changes in every trial: %s", ", ".join(changed[:10]))


def _describe(trial: dict[str, Any]) -> str:
    from mlops_template.sweep import override_value

    return " ".join(f"{k}={override_value(v)}" for k, v in trial.items())


def _run_queue(names: Sequence[str], log_path: Path) -> None:
    """`dvc exp run --run-all -j 1`, its output to `log_path`; one log line per trial as
    it starts and finishes (a trial finishes when the next one starts, or at the end)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "dvc", "exp", "run", "--run-all", "--jobs", "1"]
    current: str | None = None
    failed_lines = 0
    started = time.monotonic()
    done = 0

    def finish() -> None:
        nonlocal done
        if current is None:
            return
        done += 1
        verdict = "failed" if failed_lines else "finished"
        logger.info(
            "trial %d/%d %s %s (%.0fs)",
            done,
            len(names),
            current,
            verdict,
            time.monotonic() - started,
        )

    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                log_file.write(line)
                log_file.flush()
                if match := _STARTED.match(line):
                    finish()
                    current, failed_lines, started = match.group(1), 0, time.monotonic()
                    logger.info("trial %s running", current)
                elif _FAILED.match(line):
                    failed_lines += 1
            finish()
        except KeyboardInterrupt:
            logger.warning(
                "stopped following: the queued trials go on in the background "
                "(`dvc queue status`; `dvc queue kill NAME` stops one); "
                "`python -m mlops_template sweep show` ranks them later"
            )
            raise typer.Exit(130) from None
        finally:
            returncode = process.wait()
    if returncode != 0:
        raise DvcError(f"`dvc exp run --run-all` exited {returncode}: see {log_path}")


def _ranked(shown: list[dict[str, Any]]) -> tuple[Any, list[Any], list[str]]:
    from mlops_template.sweep import rank_experiments

    p = params()
    keys = list(p.sweep.space)
    return p, rank_experiments(shown, p.sweep.metric, keys), keys


def _baseline_name(shown: list[dict[str, Any]]) -> str:
    from mlops_template.sweep import baseline_entry

    entry = baseline_entry(shown)
    return f"{entry.get('name') or 'HEAD'} ({str(entry.get('rev'))[:7]})"


def _publish(shown: list[dict[str, Any]]) -> list[Any]:
    """Log the ranked table, write reports/sweep.md; the rows."""
    from mlops_template.sweep import format_table, report

    p, rows, keys = _ranked(shown)
    if not rows:
        raise _no_trials()
    write_text(SWEEP_MD, report(rows, p.sweep.metric, keys, _baseline_name(shown)))
    typer.echo(format_table(rows, p.sweep.metric, keys), nl=False)
    for row in rows:
        if row.state == "failed":
            logger.warning("%s failed: `dvc queue logs %s` shows why", row.name, row.name)
    logger.info("ranked table -> %s", SWEEP_MD)
    return rows


def _no_trials() -> Exception:
    from mlops_template.sweep import SweepError

    return SweepError("no sweep experiments (sweep-<n>) on this commit: run `make sweep` first")


@sweep_app.command("run")
def run_command(
    dry_run: bool = typer.Option(False, "--dry-run", help="List the trials; queue nothing."),
) -> None:
    """Queue one DVC experiment per trial of params.yaml `sweep:`, run them, rank them."""
    with sweep_errors():
        from mlops_template.sweep import (
            SweepError,
            baseline_entry,
            keys_without_effect,
            override_args,
            trial_names,
            trials,
        )

        p = params()
        points = trials(p.sweep)
        unused = keys_without_effect(p.sweep.space, p.train.model)
        if unused:
            raise SweepError(
                f"sweep.space.{unused[0]}: train.model is {p.train.model!r}, so this key "
                "changes nothing in any trial; search that model's keys, or sweep train.model too"
            )
        logger.info(
            "%s search: %d trial(s), ranked by %s", p.sweep.method, len(points), p.sweep.metric
        )
        if dry_run:
            for number, trial in enumerate(points, start=1):
                logger.info("trial %d: %s", number, _describe(trial))
            return
        _warn_about_workspace()
        shown = exp_show()
        existing = [
            rev.get("name") or ""
            for experiment in baseline_entry(shown).get("experiments") or []
            for rev in experiment.get("revs") or []
        ]
        names = trial_names(len(points), existing)
        for name, trial in zip(names, points, strict=True):
            dvc("exp", "run", "--queue", "--quiet", *override_args(trial), "--name", name)
            logger.info("queued %s: %s", name, _describe(trial))
        _run_queue(names, SWEEP_LOG)
        rows = _publish(exp_show())
        ours = [r for r in rows if r.name in names]
        if not any(r.state == "success" for r in ours):
            raise SweepError(f"every trial failed: see {SWEEP_LOG} or `dvc queue logs NAME`")


@sweep_app.command("show")
def show_command() -> None:
    """The ranked table of this commit's sweep experiments (from `dvc exp show --json`)."""
    with sweep_errors():
        _publish(exp_show())


@sweep_app.command("apply")
def apply_command(
    name: str = typer.Argument(None, help="Experiment to apply (default: the best one)."),
) -> None:
    """`dvc exp apply` the best trial (or NAME): its params.yaml, dvc.lock and outputs."""
    with sweep_errors():
        from mlops_template.sweep import SweepError, best

        p, rows, _ = _ranked(exp_show())
        if not rows:
            raise _no_trials()
        if name is None:
            chosen = best(rows)
        else:
            chosen = next((r for r in rows if r.name == name), None)
            if chosen is None:
                known = ", ".join(r.name for r in rows)
                raise SweepError(f"{name!r} is not a sweep experiment of this commit ({known})")
            if chosen.state != "success":
                raise SweepError(f"{name} {chosen.state}: only a successful trial can be applied")
        dvc("exp", "apply", chosen.name)
        metric = p.sweep.metric
        logger.info(
            "applied %s (%s=%s): params.yaml, dvc.lock and the outputs are its own now; "
            "commit them: git add params.yaml dvc.lock && git commit -m 'sweep: %s'",
            chosen.name,
            metric,
            chosen.metrics.get(metric),
            chosen.name,
        )


def register(app: typer.Typer) -> None:
    app.add_typer(sweep_app, name="sweep")
