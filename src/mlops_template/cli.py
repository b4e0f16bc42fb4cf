"""`python -m mlops_template <command>`: the command line of the template.

Every command is thin: it resolves paths and params, calls pure functions and does the
I/O. Command groups live in `mlops_template.commands.*`; each module registers its
commands on the app, so heavy libraries load only when their command runs.
"""

from __future__ import annotations

import typer

from mlops_template import log
from mlops_template.commands import (
    monitor,
    pipeline,
    predict,
    pull_request,
    registry,
    report,
    serve,
    site,
    sweep,
    template,
)

app = typer.Typer(
    name="mlops_template",
    help="MLOps template: pipeline stages, PR report, registry, serving and monitoring.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    log.configure(verbose)


for module in (
    pipeline, template, report, serve, predict, monitor, registry, pull_request, sweep, site
):  # fmt: skip
    module.register(app)


def main() -> None:
    app()
