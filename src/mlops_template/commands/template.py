"""`init` (make the template your project) and `doctor` (check the local set-up)."""

from __future__ import annotations

from pathlib import Path

import typer

from mlops_template.log import get_logger

logger = get_logger("template")


def init(
    name: str = typer.Argument(
        ..., help="New package name, a Python identifier such as churn_model."
    ),
    keep_examples: bool = typer.Option(False, "--keep-examples", help="Keep the examples/ folder."),
    root: Path = typer.Option(Path(), "--root", help="Project root (a git checkout)."),
) -> None:
    """Rename the package everywhere (imports, dvc.yaml, pyproject, docs, workflows)."""
    from mlops_template import template as t

    try:
        new = t.check_package_name(name)
        old = t.current_package(root)
    except t.TemplateError as exc:
        logger.error("%s", exc)
        raise typer.Exit(2) from None
    files = [(rel, t.read_text_or_none(root / rel)) for rel in t.git_files(root)]
    plan = t.plan_rename(files, old, new, keep_examples)
    if plan.empty:
        logger.info("already initialised as %s: nothing to change", new)
        return
    t.apply_plan(root, plan)
    logger.info(
        "renamed %s -> %s: %d files moved, %d edited, %d example files removed",
        old,
        new,
        len(plan.moves),
        len(plan.edits),
        len(plan.removals),
    )
    logger.info("next: `make run` (the environment is rebuilt for the new name) and commit")


def doctor(root: Path = typer.Option(Path(), "--root", help="Project root.")) -> None:
    """Check Python, git, DVC (remote reachability if configured), params and workflows."""
    from mlops_template.template import doctor_checks

    findings = doctor_checks(root)
    for f in findings:
        mark = "ok  " if f.ok else "FAIL"
        logger.info("%s %-18s %s", mark, f.name, f.detail)
        if not f.ok and f.fix:
            logger.info("     fix: %s", f.fix)
    failed = [f for f in findings if not f.ok]
    if failed:
        logger.error("%d check(s) failed", len(failed))
        raise typer.Exit(1)
    logger.info("all %d checks passed", len(findings))


def register(app: typer.Typer) -> None:
    app.command()(init)
    app.command()(doctor)
