"""`report --base REF`: the pull-request check. Base model vs PR model, report and gate.

Writes `reports/pr/report.md` (first line: the verdict), its PNG images,
`reports/pr/gate.json` = {"passed", "mode", "reasons"} and `reports/pr/comparison.json`.
Exit codes: 0 = written (gate passed, or failed in warn mode); 1 = written and the
enforced gate failed; 2 = user error (bad ref, pipeline outputs missing or stale);
3 = unexpected internal error (never mistaken for a failed gate).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import typer

from mlops_template import paths
from mlops_template.commands.common import EXIT_USER_ERROR, params, pipeline_is_fresh, user_errors
from mlops_template.files import write_json, write_text
from mlops_template.github import run_url
from mlops_template.log import get_logger

logger = get_logger("report")

EXIT_GATE_FAILED = 1
EXIT_INTERNAL_ERROR = 3
CANDIDATE_FILES = (
    paths.MODEL_ONNX,
    paths.SCHEMA,
    paths.TEST_DATA,
    paths.PARAMS,
)


def _git_head(root: Path) -> str | None:
    found = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
    )
    return found.stdout.strip() if found.returncode == 0 else None


def _clear(out_dir: Path) -> None:
    """Remove what a previous report left (stale images must not be uploaded)."""
    if not out_dir.is_dir():
        return
    for stale in (*out_dir.glob("*.png"), *(out_dir / n for n in ("report.md", "gate.json"))):
        stale.unlink(missing_ok=True)
    (out_dir / "comparison.json").unlink(missing_ok=True)


def report(
    base: str = typer.Option(
        ...,
        "--base",
        help="Git ref whose model is the baseline (the PR's merge base, origin/main, a SHA).",
    ),
    out_dir: Path = typer.Option(paths.PR_REPORT_DIR, "--out", help="Where the report goes."),
    check_fresh: bool = typer.Option(
        True,
        "--check-fresh/--no-check-fresh",
        help="Refuse to report when `dvc status` says the PR's outputs are stale.",
    ),
) -> None:
    """Compare the PR's model with BASE's (rebuilt in a worktree); write report and gate."""
    try:
        _report(base, out_dir, check_fresh)
    except typer.Exit:
        raise
    except Exception:
        logger.exception("report: internal error (this is a bug, not a failed gate)")
        raise typer.Exit(EXIT_INTERNAL_ERROR) from None


def _report(base_ref: str, out_dir: Path, check_fresh: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import pandas as pd

    from mlops_template.compare import (
        base_side,
        compare,
        comparison_summary,
        decide_gate,
        workspace_side,
    )
    from mlops_template.report import ReportContext, figures, render_report
    from mlops_template.worktree import BaseRefError, obtain_base, resolve_commit

    started = time.perf_counter()
    p = params()
    root = Path.cwd()
    missing = [str(f) for f in CANDIDATE_FILES if not f.is_file()]
    if missing:
        logger.error("the PR's pipeline outputs are missing (%s): run `make repro` first", missing)
        raise typer.Exit(EXIT_USER_ERROR)
    try:
        resolve_commit(base_ref, root)
    except BaseRefError as exc:
        logger.error("%s", exc)
        raise typer.Exit(EXIT_USER_ERROR) from None

    if check_fresh and not pipeline_is_fresh(root):
        logger.error(
            "the PR's pipeline outputs are stale (`dvc status` is not clean): run "
            "`make repro` first, or `make report` which does both"
        )
        raise typer.Exit(EXIT_USER_ERROR)

    # The base is rebuilt (a subprocess) while this process reads the PR's side.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending_base = pool.submit(obtain_base, base_ref, root)
        with user_errors():
            candidate = workspace_side()
            test = pd.read_parquet(paths.TEST_DATA)
        import matplotlib.figure  # noqa: F401 - warm the import while the base builds
        import onnxruntime  # noqa: F401

        base = pending_base.result()
    if base.available:
        logger.info(
            "base %s (%s) ready in %.1fs: %d stage(s) restored from the DVC cache, %d run",
            base_ref,
            (base.commit or "")[:8],
            base.seconds,
            len(base.stages_restored),
            len(base.stages_run),
        )
        base_model = base_side(base)
    else:
        logger.warning("no base model: %s", base.reason)
        base_model = None

    comparison = compare(
        candidate, base_model, test, p.compare, p.gate, base_missing_reason=base.reason
    )
    decision = decide_gate(comparison, p.gate)

    _clear(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = {}
    for kind, (name, png) in figures(comparison).items():
        (out_dir / name).write_bytes(png)
        images[kind] = name
    context = ReportContext(
        base_ref=base_ref,
        base_commit=base.commit,
        pr_commit=_git_head(root),
        run_url=run_url(os.environ),
        images=images,
        base_seconds=base.seconds,
        base_stages_run=base.stages_run,
        base_stages_restored=base.stages_restored,
    )
    markdown = render_report(comparison, decision, context)
    write_text(out_dir / paths.PR_REPORT_MD.name, markdown)
    write_json(out_dir / paths.PR_COMPARISON_JSON.name, comparison_summary(comparison, decision))
    write_json(out_dir / paths.PR_GATE_JSON.name, decision.to_json())

    logger.info("%s", markdown.splitlines()[0])
    for reason in decision.reasons:
        logger.log(40 if decision.mode == "enforce" else 30, "gate: %s", reason)
    logger.info(
        "wrote %s (%d chars, %d images) and %s in %.1fs",
        out_dir / paths.PR_REPORT_MD.name,
        len(markdown),
        len(images),
        out_dir / paths.PR_GATE_JSON.name,
        time.perf_counter() - started,
    )
    if decision.blocking:
        raise typer.Exit(EXIT_GATE_FAILED)


def register(app: typer.Typer) -> None:
    app.command()(report)
