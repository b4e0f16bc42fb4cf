"""`site`: the history page (site/index.html) from the registry and the monitor reports.

    python -m mlops_template site --out site/ [--performance FILE]... [--drift FILE]...
        [--reports DIR]...
    python -m mlops_template site fetch-reports --repo OWNER/NAME --out DIR


Reads the GTO tags (`registry.load_state`), the `monitor performance` and `monitor check`
reports (default: reports/monitor/performance.json and drift.json, when they exist; a
missing one is said on the page, not an error), those of every monitor run under
`--reports DIR` (what `site fetch-reports` downloads from the Drift monitor's artifacts:
DIR/run-<id>/performance.json and drift.json, DIR/runs.json) and the workspace's model card
(reports/deploy/model_card.md, whose version decision.json names). Writes OUT/index.html
and the model cards it links (OUT/cards/); `--tar FILE` also packs OUT as GitHub Pages'
artifact (a tar of the site's files). Rendering is `mlops_template.site`. Exit 2 when the
registry cannot be read (not a git repository).
"""

from __future__ import annotations

import json
import os
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import typer

from mlops_template import paths
from mlops_template.commands.common import params
from mlops_template.files import remove, write_text
from mlops_template.log import get_logger

logger = get_logger("site")

PERFORMANCE_JSON = paths.MONITOR_REPORT_DIR / "performance.json"


def _reports(
    given: list[Path] | None, default: Path, fetched: list[tuple[Path, str]]
) -> list[object]:
    from mlops_template.site import Report

    files = given if given else [default] if default.is_file() else []
    labelled = [(path, str(path)) for path in files] + fetched
    out = []
    for path, shown in labelled:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            out.append(Report(shown, None, "not found"))
            continue
        except (OSError, ValueError) as exc:
            out.append(Report(shown, None, f"cannot be read: {exc}"))
            continue
        if not isinstance(data, dict):
            out.append(Report(shown, None, "not a report (a JSON object was expected)"))
            continue
        out.append(Report(shown, data))
    for report in out:
        if report.error:  # type: ignore[attr-defined]
            logger.warning("%s: %s", report.source, report.error)  # type: ignore[attr-defined]
    return out


def _fetched(
    dirs: list[Path] | None,
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]], list[str]]:
    """(performance files, drift files, a sentence per DIR) of `site fetch-reports` output;
    a file with the name the page shows for it ("monitor run ID (date)/drift.json")."""
    from mlops_template.fetch_reports import MANIFEST

    performance: list[tuple[Path, str]] = []
    drift: list[tuple[Path, str]] = []
    notes: list[str] = []
    for root in dirs or []:
        try:
            manifest = json.loads((root / MANIFEST).read_text())
            runs = [r for r in manifest["runs"] if isinstance(r, dict)]
        except FileNotFoundError:
            manifest, runs = {}, []
            if root.is_dir():  # reports laid out by hand: every folder is a run
                runs = [{"folder": d.name} for d in sorted(root.iterdir()) if d.is_dir()]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            notes.append(f"{root}: {MANIFEST} cannot be read ({exc})")
            continue
        used = [r for r in runs if isinstance(r.get("folder"), str)]
        for run in used:
            folder = root / Path(run["folder"]).name  # never outside DIR
            label = (
                f"monitor run {run['run_id']} ({str(run.get('created_at', ''))[:10]})"
                if "run_id" in run
                else folder.name
            )
            for name, found in (("performance.json", performance), ("drift.json", drift)):
                if (folder / name).is_file():
                    found.append((folder / name, f"{label}/{name}"))
        workflow = manifest.get("workflow", "the monitor workflow")
        skipped = len(runs) - len(used)
        notes.append(
            f"{len(used)} run(s) of {workflow} with reports"
            + (f" ({skipped} skipped: artifact expired or missing)" if skipped else "")
            + (f", fetched {manifest['fetched_at']}" if manifest.get("fetched_at") else "")
            if runs
            else f"no run of {workflow} with reports yet"
        )
    return performance, drift, notes


def _release_base() -> str | None:
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/")
    if not repo or not server.startswith(("https://", "http://")):
        return None
    return f"{server}/{repo}/releases/tag/"


def _workspace_card(out: Path, card: Path, decision: Path, state: object) -> tuple:
    """Copy the workspace's card; (link, version it belongs to or None, {version: link})."""
    from mlops_template.site import CardLink, render_card_page, safe_name

    if not card.is_file():
        return None, None, {}
    text = card.read_text()
    recorded: dict = {}
    try:
        loaded = json.loads(decision.read_text())
        recorded = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    version = recorded.get("version")
    info = state.version(version) if isinstance(version, str) else None  # type: ignore[attr-defined]
    if info is not None and recorded.get("commit") not in (None, info.commit):
        info = None  # a decision about a commit the registry places elsewhere: not trusted
    stem = f"model_card-{safe_name(info.version)}" if info else "model_card"
    raw, page = f"cards/{stem}.md", f"cards/{stem}.html"
    write_text(out / raw, text)
    write_text(out / page, render_card_page(f"Model card {stem}", text, f"{stem}.md"))
    if info is not None:
        note = ""
    elif isinstance(version, str):
        note = f"(reports/deploy/decision.json names {version}, which is not in the registry here)"
    else:
        note = "(its version is unknown: reports/deploy/decision.json is missing)"
    link = CardLink(page, raw, note)
    return link, info.version if info else None, {info.version: link} if info else {}


def _write_tar(out: Path, target: Path) -> None:
    """OUT's files at the archive's root, as actions/upload-pages-artifact packs them."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(target, "w") as archive:
        for path in sorted(out.rglob("*")):
            if path.is_file() and not path.is_symlink():
                archive.add(path, arcname=path.relative_to(out).as_posix(), recursive=False)


site_app = typer.Typer(
    help="The history page (site/index.html); `fetch-reports`: the monitor runs' reports."
)


@site_app.callback(invoke_without_command=True)
def site(
    ctx: typer.Context,
    out: Path = typer.Option(Path("site"), "--out", help="Directory of the page."),
    performance: list[Path] = typer.Option(
        None,
        "--performance",
        help=f"`monitor performance` report (repeatable; default {PERFORMANCE_JSON} if present).",
    ),
    drift: list[Path] = typer.Option(
        None,
        "--drift",
        help=f"`monitor check` report (repeatable; default {paths.MONITOR_JSON} if present).",
    ),
    reports: list[Path] = typer.Option(
        None,
        "--reports",
        help="Directory of `site fetch-reports`: every run's performance and drift reports.",
    ),
    card: Path = typer.Option(paths.MODEL_CARD, "--card", help="The workspace's model card."),
    tar: Path = typer.Option(
        None, "--tar", help="Also write OUT as a tar (GitHub Pages' artifact format)."
    ),
) -> None:
    """Write the history page: versions, stage history, live performance, drift, cards."""
    if ctx.invoked_subcommand is not None:
        return
    from mlops_template.commands.registry import registry_errors
    from mlops_template.registry import head_commit, load_state
    from mlops_template.site import SiteData, render_site

    p = params()
    with registry_errors():
        root = Path.cwd()
        state = load_state(root, p.registry.model_name)
        try:
            head = head_commit(root)
        except ValueError:
            head = None  # a repository without commits
        remove(out / "cards", out / "index.html")
        link, card_version, cards = _workspace_card(out, card, paths.DEPLOY_DECISION, state)
        gate = p.gate
        fetched_performance, fetched_drift, fetched_notes = _fetched(reports)
        judged = [m for rules in gate.baseline.values() for m in rules]
        data = SiteData(
            state=state,
            metric_names=list(p.compare.metrics),
            chart_metrics=list(dict.fromkeys([*gate.max_regression, *gate.min, *judged])),
            performance=_reports(performance, PERFORMANCE_JSON, fetched_performance),  # type: ignore[arg-type]
            drift=_reports(drift, paths.MONITOR_JSON, fetched_drift),  # type: ignore[arg-type]
            live_notes=fetched_notes,
            workspace_card=link,
            workspace_card_version=card_version,
            version_cards=cards,
            release_base=_release_base(),
            generated=datetime.now(UTC),
            head=head,
        )
        write_text(out / "index.html", render_site(data))
        if tar is not None:
            _write_tar(out, tar)
    logger.info(
        "history page: %d version(s), %d stage event(s), %d performance and %d drift "
        "report(s) -> %s%s",
        len(state.versions),
        len(state.events),
        len([r for r in data.performance if r.data is not None]),
        len([r for r in data.drift if r.data is not None]),
        out / "index.html",
        f" (and {tar})" if tar else "",
    )


@site_app.command("fetch-reports")
def fetch_reports(
    repo: str = typer.Option(..., "--repo", help="OWNER/NAME (in Actions: $GITHUB_REPOSITORY)."),
    out: Path = typer.Option(..., "--out", help="Directory of the reports (replaced)."),
    workflow: str = typer.Option("monitor.yaml", "--workflow", help="The monitor's workflow."),
    artifact: str = typer.Option("drift-report", "--artifact", help="Its reports' artifact."),
    limit: int = typer.Option(30, "--limit", help="The newest successful runs looked at."),
    branch: str = typer.Option(
        None, "--branch", help="Runs of this branch (default: the repository's default)."
    ),
) -> None:
    """Download the monitor runs' reports (GitHub Actions artifacts) for `site --reports`.

    The token from GITHUB_TOKEN or GH_TOKEN (`actions: read`), the API from GITHUB_API_URL.
    Exit 2 when a call is refused (naming it) or an option is wrong; no run yet is fine."""
    from mlops_template.fetch_reports import run_fetch

    code = run_fetch(repo, out, workflow, artifact, limit, branch)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.add_typer(site_app, name="site")
