"""The history page (`python -m mlops_template site`): a registry in a temporary git
repository (tests/site_registry.py: three versions, a rollback) and sample monitor
reports -> site/index.html; escaping; the charts; the Pages tar."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
from tests.site_registry import PROD, VERSIONS, Elements, make_registry, write_reports
from typer.testing import CliRunner

from mlops_template import site as s
from mlops_template.cli import app
from mlops_template.registry import RegistryState, StageEvent, VersionInfo


def build(root: Path, *args: str) -> tuple[Any, str]:
    result = CliRunner().invoke(app, ["site", "--out", str(root / "site"), *args])
    page = root / "site" / "index.html"
    return result, page.read_text() if page.is_file() else ""


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    make_registry(root)
    monkeypatch.chdir(root)
    return root


def row(page: str, version: str) -> str:
    match = re.search(rf'<tr[^>]*data-version="{re.escape(version)}".*?</tr>', page)
    assert match, version
    return match.group(0)


def test_every_version_with_its_metrics_the_stage_history_in_order_and_prod_highlighted(
    repo: Path,
) -> None:
    result, page = build(repo)
    assert result.exit_code == 0, result.output
    parsed = Elements(page)
    listed = [a["data-version"] for a in parsed.find("tr") if "data-version" in a]
    assert listed == ["v1.2.0", "v1.1.0", "v1.0.0"]  # newest first
    for version, metrics in VERSIONS.items():
        cells = row(page, version)
        for value in metrics.values():
            assert f">{value:.4f}<" in cells, (version, value)
    # prod: exactly one highlighted row, the version the rollback restored
    assert [a["data-version"] for a in parsed.find("tr", class_="prod")] == [PROD]
    assert re.search(r'id="prod-version">v1\.1\.0<', page)
    assert "rolled back" in row(page, "v1.2.0") and "rolled back" not in row(page, "v1.1.0")
    history = [(a["data-version"], a["class"]) for a in parsed.find("li") if "data-version" in a]
    assert history == [
        ("v1.0.0", "assign"),
        ("v1.1.0", "assign"),
        ("v1.2.0", "assign"),
        ("v1.2.0", "unassign"),  # the rollback
        ("v1.1.0", "assign prod"),
    ]
    assert "unassigned from prod (rollback)" in page and "model#prod!#4" in page
    # no reports, no card: said on the page, not an error
    assert page.count("No live data yet") == 2
    assert "No model card in this workspace" in page
    assert "not available locally" in row(page, "v1.0.0")


def test_the_page_is_self_contained(repo: Path) -> None:
    write_reports(repo)
    _, page = build(repo)
    parsed = Elements(page)
    assert not parsed.find("script") and not parsed.find("link") and not parsed.find("img")
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page)  # nothing fetched
    assert "@import" not in page and "url(" not in page
    assert len(parsed.find("svg")) == 3  # roc_auc, balanced_accuracy, drift


def test_live_performance_charts_the_rule_and_gate_metrics_from_every_report(repo: Path) -> None:
    write_reports(repo)
    monitor = repo / "reports" / "monitor"
    result, page = build(
        repo, "--drift", str(monitor / "drift.json"), "--drift", str(monitor / "drift-earlier.json")
    )
    assert result.exit_code == 0, result.output
    parsed = Elements(page)
    # max_drop rules (and the gate's metrics): roc_auc, balanced_accuracy; not accuracy/log_loss
    assert [a["data-metric"] for a in parsed.find("figure") if "data-metric" in a] == [
        "roc_auc",
        "balanced_accuracy",
    ]
    assert len(parsed.find("rect", class_="band")) == 6  # 3 windows x 2 charts
    assert len(parsed.find("line", class_="test")) == 4  # per version and chart
    alarmed = [a for a in parsed.find("circle", class_="live") if a.get("stroke") == s.ALARM]
    assert len(alarmed) == 2  # the v1.2.0 window, on both charts
    # drift: both checks, oldest first on the chart, newest first in the table
    drift = page[page.index("<section id=drift>") :]
    assert "PSI of the most drifted features" in drift and "psi_threshold" in drift
    assert drift.index("2026-06-03 00:00</td>") < drift.index("2026-06-01 00:00</td>")
    assert '<tr class="alarm">' in drift and "No live data yet" not in page


def fetch_monitor_runs(out: Path, runs: list[tuple[str, dict[str, Any] | None, bool]]) -> None:
    """`site fetch-reports` into OUT from a fake GitHub holding monitor runs (created_at,
    {file: report} of the artifact or None for none, expired)."""
    import json

    from tests.workflows.fake_github import FakeGitHub, zip_of

    from mlops_template.fetch_reports import fetch_reports
    from mlops_template.sticky_comment import GitHub

    fake = FakeGitHub("ghs_site-test").start()
    try:
        fake.add_repository("acme/demo")
        fake.add_workflow("acme/demo", "monitor.yaml")
        for created, files, expired in runs:
            artifacts = (
                {"drift-report": zip_of({k: json.dumps(v) for k, v in files.items()})}
                if files is not None
                else {}
            )
            expired_names = ("drift-report",) if expired else ()
            fake.add_run("acme/demo", "monitor.yaml", created, artifacts, expired=expired_names)
        fetch_reports(GitHub(fake.url, "ghs_site-test"), "acme/demo", out)
    finally:
        fake.stop()


def test_the_charts_show_the_windows_of_every_fetched_monitor_run(repo: Path) -> None:
    from tests.site_registry import drift_report, performance_report, window

    first = performance_report() | {"created_at": "2026-06-04T00:00:00+00:00"}
    first["windows"] = first["windows"][:2]  # 06-01 (v1.1.0), 06-02 (v1.2.0, alarm)
    later = performance_report() | {"created_at": "2026-06-06T05:17:00+00:00"}
    later["windows"] = [
        # the 06-02 window again, with more labels by now: the later run's counts
        window("v1.2.0", "2026-06-02T00:00:00+00:00", "2026-06-03T00:00:00+00:00", 0.72, 0.84)
        | {"labelled_rows": 777},
        window("v1.1.0", "2026-06-05T00:00:00+00:00", "2026-06-06T00:00:00+00:00", 0.83, 0.86),
    ]
    skipped = {"status": "skipped", "reasons": ["a batch source: no served predictions"]}
    fetched = repo / "fetched"
    fetch_monitor_runs(
        fetched,
        [
            ("2026-06-04T05:17:00Z", {"performance.json": first,
              "drift.json": drift_report("2026-06-04T05:17:00+00:00", 0.05)}, False),
            ("2026-06-05T05:17:00Z", {"performance.json": skipped,
              "drift.json": drift_report("2026-06-05T05:17:00+00:00", 0.15)}, False),
            ("2026-06-06T05:17:00Z", {"performance.json": later,
              "drift.json": drift_report("2026-06-06T05:17:00+00:00", 0.35, "drift")}, False),
            ("2026-06-03T05:17:00Z", {"performance.json": first}, True),  # expired
            ("2026-06-02T05:17:00Z", None, False),  # no artifact
        ],
    )  # fmt: skip
    result, page = build(repo, "--reports", str(fetched))
    assert result.exit_code == 0, result.output
    performance = page[page.index("<section id=performance>") : page.index("<section id=drift>")]
    parsed = Elements(performance)
    # 3 windows once each (06-01, 06-02 from the later run, 06-05), on both charts
    assert len(parsed.find("circle", class_="live")) == 6
    assert len(parsed.find("rect", class_="band")) == 6
    assert "Windows (3)" in performance and ">777<" in performance and ">400<" in performance
    starts = re.findall(r"<td>(2026-06-\d\d) 00:00</td>", performance)
    assert starts == ["2026-06-01", "2026-06-02", "2026-06-05"]  # ordered by time
    assert "live 0.7200" in performance and "live 0.7000" not in performance
    assert "3 run(s) of monitor.yaml with reports (2 skipped" in performance
    # runs are named by id and date, not by where the files happen to be
    assert (
        "From <code>monitor run " in performance and "(2026-06-06)/performance.json" in performance
    )
    assert str(fetched) not in page
    drift = page[page.index("<section id=drift>") : page.index("<section id=cards>")]
    checked = re.findall(r"<td>(2026-06-0\d) 05:17</td>", drift)
    assert checked == ["2026-06-06", "2026-06-05", "2026-06-04"]  # newest first
    assert len(Elements(drift).find("circle")) == 3 * 2 + 2  # 3 checks x 2 features + legend
    assert "No live data yet" not in page


def test_no_monitor_run_yet_builds_the_page_saying_there_is_no_live_data(repo: Path) -> None:
    fetched = repo / "fetched"
    fetch_monitor_runs(fetched, [])
    result, page = build(repo, "--reports", str(fetched))
    assert result.exit_code == 0, result.output
    assert page.count("No live data yet") == 2
    assert page.count("no run of monitor.yaml with reports yet") == 2


def test_a_missing_report_given_by_name_is_said_not_an_error(repo: Path) -> None:
    result, page = build(repo, "--performance", "nowhere/performance.json")
    assert result.exit_code == 0, result.output
    performance = page[page.index("<section id=performance>") : page.index("<section id=drift>")]
    assert "No live data yet" in performance and "nowhere/performance.json" in performance
    assert "not found" in performance


def test_the_workspace_card_is_copied_and_linked_to_its_version(repo: Path) -> None:
    deploy = repo / "reports" / "deploy"
    deploy.mkdir(parents=True)
    (deploy / "model_card.md").write_text("# Model card: model v1.1.0\n<script>x()</script>\n")
    from mlops_template.registry import load_state

    commit = load_state(repo, "model").version("v1.1.0").commit  # type: ignore[union-attr]
    (deploy / "decision.json").write_text(f'{{"version": "v1.1.0", "commit": "{commit}"}}')
    result, page = build(repo)
    assert result.exit_code == 0, result.output
    assert '<a href="cards/model_card-v1.1.0.html">model card</a>' in row(page, "v1.1.0")
    assert "not available locally" in row(page, "v1.0.0")
    copy = repo / "site" / "cards" / "model_card-v1.1.0.md"
    assert copy.read_text() == (deploy / "model_card.md").read_text()
    card_page = (repo / "site" / "cards" / "model_card-v1.1.0.html").read_text()
    assert "<script>" not in card_page and "&lt;script&gt;x()&lt;/script&gt;" in card_page


def test_the_tar_holds_the_site_at_its_root(repo: Path) -> None:
    result, _ = build(repo, "--tar", str(repo / "artifact.tar"))
    assert result.exit_code == 0, result.output
    with tarfile.open(repo / "artifact.tar") as archive:
        assert archive.getnames() == ["index.html"]


def test_not_a_git_repository_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "params.yaml").write_text((Path(s.__file__).parents[2] / "params.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    result, page = build(tmp_path)
    assert result.exit_code == 2 and page == ""


# ---------------------------------------------------------------- escaping (pure rendering)

HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'


def hostile_state() -> RegistryState:
    info = VersionInfo(HOSTILE, "c" * 40, f"model@{HOSTILE}", 1000, {"metrics": {HOSTILE: 0.5}})
    event = StageEvent(1, "prod", HOSTILE, "c" * 40, True, f"model#{HOSTILE}#1", 1001)
    return RegistryState(HOSTILE, [info], [event])


def test_every_string_is_escaped() -> None:
    window = {
        "model_version": HOSTILE,
        "start": "2026-06-01T00:00:00+00:00",
        "end": "2026-06-02T00:00:00+00:00",
        "labelled_rows": HOSTILE,
        "metrics": {HOSTILE: {"live": 0.8, "low": 0.7, "high": 0.9, "test": 0.85, "max_drop": 1}},
    }
    drift = {
        "status": HOSTILE,
        "source": HOSTILE,
        "drifted_features": [HOSTILE],
        "features": [{"name": HOSTILE, "psi": 0.3}],
        "created_at": "2026-06-01T00:00:00+00:00",
    }
    page = s.render_site(
        s.SiteData(
            state=hostile_state(),
            performance=[s.Report(HOSTILE, {"status": HOSTILE, "windows": [window]})],
            drift=[s.Report("d.json", drift), s.Report(HOSTILE, None, HOSTILE)],
            live_notes=[HOSTILE],
            workspace_card=s.CardLink(HOSTILE, HOSTILE, HOSTILE),
            workspace_card_version=HOSTILE,
            version_cards={HOSTILE: s.CardLink(HOSTILE, HOSTILE)},
            head=HOSTILE,
        )
    )
    parsed = Elements(page)
    assert not parsed.find("script") and not parsed.find("img")
    assert "<script" not in page.lower() and "onerror=alert(2)>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 10
    assert not [a for _, a in parsed.tags if any(k.startswith("on") for k in a)]


def test_a_hostile_release_link_stays_an_attribute() -> None:
    page = s.versions_section(
        s.SiteData(state=hostile_state(), release_base='https://x/"><script>')
    )
    assert "<script>" not in page and 'href="https://x/&quot;&gt;&lt;script&gt;' in page


# ---------------------------------------------------------------- charts


def test_the_performance_chart_draws_bands_test_lines_and_alarms() -> None:
    windows = [
        s.Window("v1", 0, 86400, 0.8, 0.75, 0.85, 0.82),
        s.Window("v1", 86400, 172800, 0.6, 0.55, 0.65, 0.82, alarm=True),
        s.Window("v2", 172800, 259200, None, None, None, 0.9),
    ]
    svg = s.performance_chart("roc_auc", windows, "95%")
    parsed = Elements(svg)
    assert len(parsed.find("rect", class_="band")) == 2
    assert len(parsed.find("line", class_="test")) == 2
    assert [a.get("stroke") for a in parsed.find("circle", class_="live")] == [None, s.ALARM]
    # higher values are drawn higher (smaller y)
    ys = [float(a["cy"]) for a in parsed.find("circle", class_="live")]  # type: ignore[arg-type]
    assert ys[0] < ys[1]
    assert s.performance_chart("roc_auc", []).startswith('<p class="empty">')


def test_charted_metrics_are_those_with_a_max_drop_rule_and_those_the_gate_judges() -> None:
    from tests.site_registry import performance_report

    data = s.SiteData(
        state=hostile_state(),
        performance=[s.Report("p.json", performance_report())],
        chart_metrics=["accuracy"],  # judged by the gate, no max_drop rule
    )
    parsed = Elements(s.performance_section(data))
    charted = [a["data-metric"] for a in parsed.find("figure")]
    assert charted == ["roc_auc", "balanced_accuracy", "accuracy"]  # not log_loss
    none = s.performance_section(s.SiteData(state=hostile_state(), performance=[]))
    assert "No live data yet (no report given)" in none


def test_windows_of_several_reports_are_merged_once_the_newest_report_winning() -> None:
    from tests.site_registry import performance_report

    old = performance_report() | {"created_at": "2026-06-03T00:00:00+00:00"}
    new = performance_report() | {"created_at": "2026-06-05T00:00:00+00:00"}
    new["windows"] = [dict(w) for w in new["windows"]]
    new["windows"][0] = new["windows"][0] | {"labelled_rows": 999}
    reports = [s.Report("new.json", new), s.Report("old.json", old)]  # any order
    windows = s._windows(reports)
    assert len(windows) == 3
    assert windows[0]["labelled_rows"] == 999
    assert [w["start"][:10] for w in windows] == ["2026-06-01", "2026-06-02", "2026-06-03"]


def test_versions_that_were_deployed_link_their_release_when_the_repository_is_known(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/demo")
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.com")
    _, page = build(repo)
    release = "https://github.com/acme/demo/releases/tag/model@v1.0.0"
    assert f'<a href="{release}">release (its card)</a>' in row(page, "v1.0.0")


def test_a_card_whose_decision_names_an_unknown_version_is_linked_with_a_note(repo: Path) -> None:
    deploy = repo / "reports" / "deploy"
    deploy.mkdir(parents=True)
    (deploy / "model_card.md").write_text("# Model card: model v9.0.0\n")
    (deploy / "decision.json").write_text('{"version": "v9.0.0", "commit": "abc"}')
    _, page = build(repo)
    assert '<a href="cards/model_card.html">' in page
    assert "names v9.0.0, which is not in the registry here" in page
    assert "model card</a>" not in row(page, "v1.1.0")  # linked to no version
