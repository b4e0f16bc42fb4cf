"""The history page (`python -m mlops_template site`): one static, self-contained HTML file.

What it shows, all read from files the project already has (nothing is rebuilt):
- every registered version of the model with its own test-set metrics (the GTO
  registration tags, `registry.load_state`), the current prod version highlighted;
- the stage history in GTO's counter order: promotions (assignments) and rollbacks
  (unassignments);
- live performance over time (`monitor performance` reports): one chart per metric that
  has a `max_drop` rule or that the gate judges, the live value per window with its
  confidence interval as a band and the version's test-set value as a dashed line;
- drift over time (`monitor check` reports): the PSI of the most drifted features per
  check, with the PSI threshold;
- links to the model cards available locally (copied next to the page).

The page has no script, no external font, stylesheet or image: inline CSS and inline
SVG drawn here, so it opens from a file:// URL and GitHub Pages serves it as is. Every
string from a tag, a report or a file name goes through `html.escape`.

Pure functions: the command (`commands/site.py`) reads the registry and the reports and
writes the files.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

PROD = "prod"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
ALARM = "#d62728"
DRIFT_FEATURES_SHOWN = 5  # lines per drift chart: the most drifted features overall


def esc(value: Any) -> str:
    """Text or attribute value, escaped (quotes too)."""
    return html.escape(str(value), quote=True)


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Report:
    """A monitor report as given on the command line: its JSON, or why it is missing."""

    source: str  # the path as given (shown on the page)
    data: dict[str, Any] | None
    error: str | None = None  # "not found", "not JSON: ...": the page says so


@dataclass(frozen=True)
class CardLink:
    href: str  # relative to the page
    raw_href: str | None = None  # the markdown copy
    note: str = ""


@dataclass(frozen=True)
class SiteData:
    state: Any  # registry.RegistryState
    metric_names: Sequence[str] = ()  # preferred column order (compare.metrics)
    chart_metrics: Sequence[str] = ()  # the gate's metrics: charted even without max_drop
    performance: Sequence[Report] = ()
    drift: Sequence[Report] = ()
    live_notes: Sequence[str] = ()  # where fetched reports came from (`site --reports`)
    workspace_card: CardLink | None = None
    workspace_card_version: str | None = None
    version_cards: dict[str, CardLink] = field(default_factory=dict)
    release_base: str | None = None  # https://github.com/o/r/releases/tag/ (cards of deploys)
    generated: datetime | None = None
    head: str | None = None  # the commit the page was built from


# ---------------------------------------------------------------- formatting


def _date(unix: int | float) -> str:
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "n/a"
    if not math.isfinite(value):
        return "n/a"
    return f"{value:.4f}"


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def safe_name(text: str) -> str:
    """A file name from a version string (SemVer in practice; anything else is flattened)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text).strip("._") or "version"


# ---------------------------------------------------------------- SVG charts


@dataclass(frozen=True)
class Window:
    """One window of one version on a performance chart."""

    group: str  # model version
    start: float  # unix seconds
    end: float
    live: float | None
    low: float | None
    high: float | None
    test: float | None
    alarm: bool = False


W, H = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 44


class _Scale:
    def __init__(self, xs: Sequence[float], ys: Sequence[float]) -> None:
        self.x0, self.x1 = min(xs), max(xs)
        if self.x1 - self.x0 < 1:
            self.x0, self.x1 = self.x0 - 3600, self.x1 + 3600
        lo, hi = min(ys), max(ys)
        pad = (hi - lo) * 0.08 if hi > lo else (abs(hi) * 0.05 or 0.05)
        self.y0, self.y1 = lo - pad, hi + pad

    def x(self, value: float) -> float:
        return LEFT + (value - self.x0) / (self.x1 - self.x0) * (W - LEFT - RIGHT)

    def y(self, value: float) -> float:
        return TOP + (self.y1 - value) / (self.y1 - self.y0) * (H - TOP - BOTTOM)


def _axes(scale: _Scale, title: str) -> list[str]:
    out = [
        f'<rect x="{LEFT}" y="{TOP}" width="{W - LEFT - RIGHT}" height="{H - TOP - BOTTOM}" '
        'fill="#fff" stroke="#999"/>',
        f'<text x="{LEFT}" y="18" class="ct">{esc(title)}</text>',
    ]
    for i in range(5):
        value = scale.y0 + (scale.y1 - scale.y0) * i / 4
        y = scale.y(value)
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{value:.3g}</text>'
        )
    for i in range(4):
        value = scale.x0 + (scale.x1 - scale.x0) * i / 3
        x = scale.x(value)
        anchor = "start" if i == 0 else "end" if i == 3 else "middle"
        out.append(
            f'<text x="{x:.1f}" y="{H - BOTTOM + 16}" text-anchor="{anchor}">'
            f"{esc(_date(value))}</text>"
        )
    return out


def _svg(body: list[str], label: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" '
        f'height="{H}" role="img" aria-label="{esc(label)}" class="chart">'
        + "".join(body)
        + "</svg>"
    )


def _legend(entries: list[tuple[str, str, str]]) -> list[str]:
    """(color, kind: dot|band|dash, label) along the bottom."""
    out, x = [], LEFT
    y = H - 10
    for color, kind, label in entries:
        if kind == "band":
            out.append(
                f'<rect x="{x}" y="{y - 8}" width="14" height="10" fill="{color}" '
                'fill-opacity="0.2"/>'
            )
        elif kind == "dash":
            out.append(
                f'<line x1="{x}" x2="{x + 14}" y1="{y - 3}" y2="{y - 3}" stroke="{color}" '
                'stroke-width="2" stroke-dasharray="4 3"/>'
            )
        else:
            out.append(f'<circle cx="{x + 7}" cy="{y - 3}" r="4" fill="{color}"/>')
        out.append(f'<text x="{x + 18}" y="{y}">{esc(label)}</text>')
        x += 26 + 7 * len(label)
    return out


def performance_chart(metric: str, windows: Sequence[Window], confidence: str = "") -> str:
    """Live METRIC per window (dot, joined per version), its interval (band) and the
    version's test-set value (dashed); alarm windows in red."""
    xs = [v for w in windows for v in (w.start, w.end)]
    ys = [v for w in windows for v in (w.live, w.low, w.high, w.test) if v is not None]
    if not xs or not ys:
        return '<p class="empty">no live value of this metric yet</p>'
    scale = _Scale(xs, ys)
    groups = list(dict.fromkeys(w.group for w in windows))
    color = {g: PALETTE[i % len(PALETTE)] for i, g in enumerate(groups)}
    body = _axes(scale, metric)
    for w in windows:
        if w.low is not None and w.high is not None:
            x0, x1 = scale.x(w.start), scale.x(w.end)
            top, bottom = scale.y(w.high), scale.y(w.low)
            body.append(
                f'<rect class="band" x="{x0:.1f}" y="{top:.1f}" width="{max(x1 - x0, 1):.1f}" '
                f'height="{max(bottom - top, 1):.1f}" fill="{color[w.group]}" fill-opacity="0.2">'
                f"<title>{esc(w.group)} {esc(_date(w.start))}: interval "
                f"[{_number(w.low)}, {_number(w.high)}]</title></rect>"
            )
    for g in groups:
        mine = [w for w in windows if w.group == g]
        tests = [w.test for w in mine if w.test is not None]
        if tests:
            test = tests[-1]
            x0, x1 = scale.x(min(w.start for w in mine)), scale.x(max(w.end for w in mine))
            body.append(
                f'<line class="test" x1="{x0:.1f}" x2="{x1:.1f}" y1="{scale.y(test):.1f}" '
                f'y2="{scale.y(test):.1f}" stroke="{color[g]}" stroke-width="2" '
                f'stroke-dasharray="6 4"><title>{esc(g)} test set: {_number(test)}</title></line>'
            )
        points = [
            (scale.x((w.start + w.end) / 2), scale.y(w.live)) for w in mine if w.live is not None
        ]
        if len(points) > 1:
            body.append(
                '<polyline fill="none" stroke-width="1.5" stroke="'
                + color[g]
                + '" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
                + '"/>'
            )
        for w in mine:
            if w.live is None:
                continue
            x, y = scale.x((w.start + w.end) / 2), scale.y(w.live)
            stroke = f' stroke="{ALARM}" stroke-width="3"' if w.alarm else ""
            body.append(
                f'<circle class="live" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{color[g]}"{stroke}>'
                f"<title>{esc(g)} {esc(_date(w.start))}: live {_number(w.live)}"
                f"{' (ALARM)' if w.alarm else ''}</title></circle>"
            )
    legend = [(color[g], "dot", g) for g in groups]
    legend += [("#888", "band", f"{confidence} interval".strip()), ("#888", "dash", "test set")]
    if any(w.alarm for w in windows):
        legend.append((ALARM, "dot", "alarm"))
    return _svg(body + _legend(legend), f"live {metric} per window")


def line_chart(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    threshold: float | None = None,
    threshold_label: str = "threshold",
) -> str:
    """Lines of (unix time, value), one per name; an optional dashed threshold."""
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    if threshold is not None:
        ys.append(threshold)
    if not xs:
        return '<p class="empty">nothing to draw</p>'
    scale = _Scale(xs, ys)
    body = _axes(scale, title)
    if threshold is not None:
        y = scale.y(threshold)
        body.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{ALARM}" '
            f'stroke-dasharray="6 4"><title>{esc(threshold_label)}: {threshold:g}</title></line>'
        )
    legend = []
    for i, (name, points) in enumerate(series.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = [(scale.x(x), scale.y(y)) for x, y in sorted(points)]
        if len(coords) > 1:
            body.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
                + '"/>'
            )
        for (x, y), (t, v) in zip(coords, sorted(points), strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{color}">'
                f"<title>{esc(name)} {esc(_date(t))}: {v:.4g}</title></circle>"
            )
        legend.append((color, "dot", name))
    if threshold is not None:
        legend.append((ALARM, "dash", threshold_label))
    return _svg(body + _legend(legend), title)


# ---------------------------------------------------------------- sections


def _metric_columns(state: Any, preferred: Sequence[str]) -> list[str]:
    found = {m for v in state.versions for m, x in v.metrics.items() if _finite(x) is not None}
    return [m for m in preferred if m in found] + sorted(found - set(preferred))


def _rolled_back(state: Any, stage: str = PROD) -> set[str]:
    last: dict[str, bool] = {}
    for event in state.events:
        if event.stage == stage:
            last[event.version] = event.assigned
    return {v for v, assigned in last.items() if not assigned}


def _card_cell(data: SiteData, version: str, ever_prod: bool) -> str:
    card = data.version_cards.get(version)
    if card is not None:
        raw = f' (<a href="{esc(card.raw_href)}">.md</a>)' if card.raw_href else ""
        return f'<a href="{esc(card.href)}">model card</a>{raw}'
    text = '<span class="muted">not available locally</span>'
    tag = data.state.version(version).tag if data.state.version(version) else None
    if data.release_base and ever_prod and tag:
        url = data.release_base + quote(tag, safe="@")
        text += f' · <a href="{esc(url)}">release (its card)</a>'
    return text


def versions_section(data: SiteData) -> str:
    state = data.state
    prod = state.current(PROD)
    if not state.versions:
        return (
            "<section id=versions><h2>Versions</h2><p class=empty>No version of "
            f"<code>{esc(state.name)}</code> is registered yet (<code>make register</code>)."
            "</p></section>"
        )
    columns = _metric_columns(state, data.metric_names)
    rolled = _rolled_back(state)
    ever = {e.version for e in state.events if e.stage == PROD and e.assigned}
    head = "".join(f"<th>{esc(m)}</th>" for m in columns)
    rows = []
    for info in reversed(state.versions):
        stages = state.stages(info.version)
        badges = "".join(f'<span class="badge">{esc(s)}</span>' for s in stages)
        if info.version in rolled:
            badges += '<span class="badge rb">rolled back</span>'
        cells = "".join(f'<td class="num">{_number(info.metrics.get(m))}</td>' for m in columns)
        css = ' class="prod"' if info.version == prod else ""
        rows.append(
            f'<tr{css} data-version="{esc(info.version)}"><td><b>{esc(info.version)}</b></td>'
            f"<td><code>{esc(info.commit[:8])}</code></td><td>{esc(_date(info.created))}</td>"
            f"<td>{badges or '-'}</td>{cells}"
            f"<td>{_card_cell(data, info.version, info.version in ever)}</td></tr>"
        )
    return (
        f"<section id=versions><h2>Versions ({len(state.versions)})</h2>"
        "<p>Each version's metrics are its own evaluation on its test set, recorded in its "
        "registration tag.</p><table><thead><tr><th>version</th><th>commit</th>"
        f"<th>registered (UTC)</th><th>stages</th>{head}<th>model card</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def history_section(data: SiteData) -> str:
    state = data.state
    events = [e for e in state.events if e.stage == PROD]
    others = [e for e in state.events if e.stage != PROD]
    if not state.events:
        return (
            "<section id=history><h2>Stage history</h2><p class=empty>No version has been "
            "promoted yet (<code>make promote</code>).</p></section>"
        )
    prod = state.current(PROD)
    current = next(
        (e for e in reversed(events) if e.assigned and e.version == prod), None
    )  # the assignment that made the current prod version
    items = []
    for event in [*events, *others]:
        if event.assigned:
            what = f"<b>{esc(event.version)}</b> promoted to {esc(event.stage)}"
            css = "assign"
        else:
            what = f"<b>{esc(event.version)}</b> unassigned from {esc(event.stage)} (rollback)"
            css = "unassign"
        if event is current:
            css += " prod"
            what += ' <span class="badge">current prod</span>'
        items.append(
            f'<li class="{css}" data-version="{esc(event.version)}">'
            f'<span class="when">{esc(_date(event.created))}</span> #{event.counter} '
            f"{what} <code>{esc(event.tag)}</code></li>"
        )
    return (
        "<section id=history><h2>Stage history</h2><p>In GTO's order (the tag counter), "
        f"oldest first. {PROD} now: <b>{esc(prod or 'none')}</b>.</p>"
        f'<ol class="history">{"".join(items)}</ol></section>'
    )


def _report_notes(reports: Sequence[Report]) -> str:
    notes = [f"<li><code>{esc(r.source)}</code>: {esc(r.error)}</li>" for r in reports if r.error]
    return f'<ul class="notes">{"".join(notes)}</ul>' if notes else ""


def _live_notes(data: SiteData) -> str:
    if not data.live_notes:
        return ""
    return f'<p class="muted">Monitor reports: {esc("; ".join(data.live_notes))}.</p>'


def _status_line(reports: Sequence[Report]) -> str:
    """Where the windows come from: each report, or the span and the latest of many."""
    if len(reports) <= 3:
        return "; ".join(
            f"<code>{esc(r.source)}</code>: {esc(r.data.get('status', '?'))}"  # type: ignore[union-attr]
            for r in reports
        )
    dated = sorted(reports, key=lambda r: str(r.data.get("created_at", "")))  # type: ignore[union-attr]
    times = [parse_time(r.data.get("created_at")) for r in dated]  # type: ignore[union-attr]
    known = [t for t in times if t is not None]
    span = f", {known[0]:%Y-%m-%d} to {known[-1]:%Y-%m-%d}" if known else ""
    latest = dated[-1]
    return (
        f"{len(reports)} reports{esc(span)}; the latest, <code>{esc(latest.source)}</code>: "
        f"{esc(latest.data.get('status', '?'))}"  # type: ignore[union-attr]
    )


def _windows(reports: Sequence[Report]) -> list[dict[str, Any]]:
    """Every window of every report, once (the same version and start: the newest report's)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    ordered = sorted(
        (r for r in reports if r.data is not None),
        key=lambda r: str(r.data.get("created_at", "")),  # type: ignore[union-attr]
    )
    for report in ordered:
        for window in report.data.get("windows") or []:  # type: ignore[union-attr]
            if isinstance(window, dict) and parse_time(window.get("start")):
                found[(str(window.get("model_version")), str(window.get("start")))] = window
    return sorted(found.values(), key=lambda w: parse_time(w["start"]))  # type: ignore[arg-type,return-value]


def performance_section(data: SiteData) -> str:
    reports = [r for r in data.performance if r.data is not None]
    windows = _windows(reports)
    notes = _report_notes(data.performance)
    if not windows:
        why = (
            "no report given"
            if not data.performance
            else "the reports hold no window with labelled predictions"
            if reports
            else "no report could be read"
        )
        return (
            "<section id=performance><h2>Live performance</h2><p class=empty>No live data "
            f"yet ({esc(why)}). <code>python -m mlops_template monitor performance</code> "
            "writes <code>reports/monitor/performance.json</code> once delayed labels are "
            f"stored (<code>monitor labels</code>).</p>{_live_notes(data)}{notes}</section>"
        )
    charted: list[str] = []
    for window in windows:
        for name, m in (window.get("metrics") or {}).items():
            if not isinstance(m, dict) or name in charted:
                continue
            if m.get("max_drop") is not None or name in data.chart_metrics:
                charted.append(name)
    charts = []
    for name in charted:
        points = []
        for w in windows:
            m = (w.get("metrics") or {}).get(name)
            if not isinstance(m, dict):
                continue
            start, end = parse_time(w["start"]), parse_time(w.get("end")) or parse_time(w["start"])
            points.append(
                Window(
                    str(w.get("model_version")),
                    start.timestamp(),  # type: ignore[union-attr]
                    end.timestamp(),  # type: ignore[union-attr]
                    _finite(m.get("live")),
                    _finite(m.get("low")),
                    _finite(m.get("high")),
                    _finite(m.get("test")),
                    bool(m.get("alarm")),
                )
            )
        rule = next(
            (
                (w.get("metrics") or {}).get(name, {}).get("max_drop")
                for w in windows
                if isinstance((w.get("metrics") or {}).get(name), dict)
            ),
            None,
        )
        caption = f"max_drop {rule}" if rule is not None else "judged by the gate (no max_drop)"
        charts.append(
            f'<figure data-metric="{esc(name)}">{performance_chart(name, points)}'
            f"<figcaption>{esc(name)}: {esc(caption)}</figcaption></figure>"
        )
    rows = []
    for w in windows:
        metrics = w.get("metrics") or {}
        shown = ", ".join(
            f"{name} {_number(m.get('live'))} [{_number(m.get('low'))}, {_number(m.get('high'))}]"
            for name, m in metrics.items()
            if isinstance(m, dict) and name in charted
        )
        alarm = '<span class="badge rb">alarm</span>' if w.get("alarm") else ""
        judged = "" if w.get("judged", True) else '<span class="muted">too few labels</span>'
        rows.append(
            f"<tr><td>{esc(w.get('model_version'))}</td>"
            f"<td>{esc(_date(parse_time(w['start']).timestamp()))}</td>"  # type: ignore[union-attr]
            f'<td class="num">{esc(w.get("labelled_rows", ""))}</td>'
            f"<td>{esc(shown) or judged}</td><td>{alarm}</td></tr>"
        )
    if not charts:
        charts.append(
            '<p class="empty">No metric with a max_drop rule or judged by the gate in these '
            "windows (too few labels per window?).</p>"
        )
    return (
        "<section id=performance><h2>Live performance</h2>"
        f"<p>From {_status_line(reports)}. Dots: the live value per window; band: its "
        "bootstrap confidence interval; dashed: the version's test-set value.</p>"
        f"{_live_notes(data)}"
        f"{''.join(charts)}<details><summary>Windows ({len(windows)})</summary><table>"
        "<thead><tr><th>version</th><th>window start (UTC)</th><th>labelled rows</th>"
        f"<th>live [interval]</th><th></th></tr></thead><tbody>{''.join(rows)}</tbody>"
        f"</table></details>{notes}</section>"
    )


def _drift_time(report: dict[str, Any]) -> datetime | None:
    window = report.get("window") or {}
    return parse_time(window.get("until") if isinstance(window, dict) else None) or parse_time(
        report.get("created_at")
    )


def _drift_key(report: dict[str, Any]) -> tuple[str, str, str]:
    window = report.get("window") if isinstance(report.get("window"), dict) else {}
    return (str(report.get("created_at")), str(window.get("until")), str(report.get("source")))


def drift_section(data: SiteData) -> str:
    unique: dict[tuple[str, str, str], Report] = {}
    for r in data.drift:  # a check given twice (fetched and local, say) counts once
        if r.data is not None:
            unique.setdefault(_drift_key(r.data), r)
    reports = [(r, _drift_time(r.data)) for r in unique.values()]
    dated = sorted(((r, t) for r, t in reports if t is not None), key=lambda rt: rt[1])
    notes = _report_notes(data.drift)
    undated = [r for r, t in reports if t is None]
    if undated:
        notes += _report_notes([Report(r.source, None, "no time in the report") for r in undated])
    if not dated:
        why = "no report given" if not data.drift else "no report could be read"
        return (
            "<section id=drift><h2>Drift</h2><p class=empty>No live data yet "
            f"({esc(why)}). <code>make monitor SOURCE=logs/predictions.sqlite</code> writes "
            f"<code>reports/monitor/drift.json</code>.</p>{_live_notes(data)}{notes}</section>"
        )
    worst: dict[str, float] = {}
    for report, _ in dated:
        for feature in report.data.get("features") or []:  # type: ignore[union-attr]
            value = _finite(feature.get("psi")) if isinstance(feature, dict) else None
            if value is not None:
                name = str(feature.get("name"))
                worst[name] = max(worst.get(name, value), value)
    top = sorted(worst, key=lambda n: -worst[n])[:DRIFT_FEATURES_SHOWN]
    series: dict[str, list[tuple[float, float]]] = {name: [] for name in top}
    for report, when in dated:
        for feature in report.data.get("features") or []:  # type: ignore[union-attr]
            if isinstance(feature, dict) and str(feature.get("name")) in series:
                value = _finite(feature.get("psi"))
                if value is not None:
                    series[str(feature["name"])].append((when.timestamp(), value))
    thresholds = [
        _finite((r.data.get("params") or {}).get("psi_threshold"))  # type: ignore[union-attr]
        for r, _ in dated
    ]
    threshold = next((t for t in reversed(thresholds) if t is not None), None)
    chart = (
        line_chart("PSI of the most drifted features", series, threshold, "psi_threshold")
        if series
        else '<p class="empty">the reports hold no feature statistics</p>'
    )
    rows = []
    for report, when in reversed(dated):
        d = report.data or {}
        status = str(d.get("status", "?"))
        css = ' class="alarm"' if status == "drift" else ""
        rows_current = (
            (d.get("rows") or {}).get("current", "") if isinstance(d.get("rows"), dict) else ""
        )
        drifted = ", ".join(str(f) for f in d.get("drifted_features") or []) or "-"
        rows.append(
            f"<tr{css}><td>{esc(when.strftime('%Y-%m-%d %H:%M'))}</td><td>{esc(status)}</td>"
            f'<td class="num">{esc(rows_current)}</td><td>{esc(drifted)}</td>'
            f"<td><code>{esc(d.get('source', report.source))}</code></td></tr>"
        )
    return (
        "<section id=drift><h2>Drift</h2><p>Each check compares a window of live data with "
        "the training data of the model (PSI per feature; drift also needs the test's "
        f"adjusted p-value).</p><figure>{chart}</figure><table><thead><tr><th>checked (UTC)"
        "</th><th>status</th><th>rows</th><th>drifted features</th><th>source</th></tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table>{_live_notes(data)}{notes}</section>"
    )


def cards_section(data: SiteData) -> str:
    if data.workspace_card is None:
        body = (
            "<p class=empty>No model card in this workspace (<code>make promote</code> "
            "writes <code>reports/deploy/model_card.md</code>).</p>"
        )
    else:
        card = data.workspace_card
        of = f" of {esc(data.workspace_card_version)}" if data.workspace_card_version else ""
        raw = f' (<a href="{esc(card.raw_href)}">markdown</a>)' if card.raw_href else ""
        note = f" {esc(card.note)}" if card.note else ""
        body = f'<p><a href="{esc(card.href)}">The workspace\'s model card{of}</a>{raw}.{note}</p>'
    missing = [v.version for v in data.state.versions if v.version not in data.version_cards]
    if missing:
        body += (
            f"<p class=muted>No card available locally for {esc(', '.join(missing))}: cards are "
            "written when a version is promoted (<code>reports/deploy/</code> of that run) and "
            "attached to the GitHub Release of each deployed version.</p>"
        )
    return f"<section id=cards><h2>Model cards</h2>{body}</section>"


STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;
background:#f6f7f9}
main{max-width:1000px;margin:0 auto;padding:16px 24px 48px}
header{background:#24292f;color:#fff;padding:16px 24px}
header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#ccd}
section{background:#fff;border:1px solid #dde;border-radius:6px;padding:8px 16px 16px;
margin:16px 0}
h2{font-size:18px;margin:8px 0}
table{border-collapse:collapse;width:100%;margin:8px 0}
th,td{border-bottom:1px solid #e5e5e5;padding:4px 8px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.prod td{background:#e6f4ea;font-weight:600}tr.alarm td{background:#fdecea}
.badge{display:inline-block;background:#1a7f37;color:#fff;border-radius:10px;
padding:0 8px;margin-right:4px;font-size:12px}.badge.rb{background:#cf222e}
ol.history li{margin:2px 0}ol.history li.unassign{color:#a40e26}
ol.history li.prod{background:#e6f4ea;font-weight:600}
.when{color:#666;font-variant-numeric:tabular-nums;margin-right:6px}
.muted,.empty{color:#666}.empty{font-style:italic}
figure{margin:12px 0}figcaption{color:#555;font-size:13px}
svg.chart{max-width:100%;height:auto;font-size:11px;fill:#333}
svg .ct{font-size:13px;font-weight:600}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
"""


def render_site(data: SiteData) -> str:
    """The page: versions, stage history, live performance, drift, model cards."""
    state = data.state
    prod = state.current(PROD)
    built = (
        f" · built {esc(data.generated.strftime('%Y-%m-%d %H:%M UTC'))}" if data.generated else ""
    )
    head = f" from <code>{esc(data.head[:8])}</code>" if data.head else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{esc(state.name)}: model history</title><style>{STYLE}</style></head><body>"
        f"<header><h1>Model <code>{esc(state.name)}</code>: history</h1>"
        f'<p>{PROD}: <b id="prod-version">{esc(prod or "none")}</b> · '
        f"{len(state.versions)} version(s) · {len(state.events)} stage event(s){built}{head}"
        "</p></header><main>"
        + versions_section(data)
        + history_section(data)
        + performance_section(data)
        + drift_section(data)
        + cards_section(data)
        + "</main></body></html>\n"
    )


def render_card_page(title: str, markdown: str, raw_href: str) -> str:
    """A model card as a page a browser shows (GitHub Pages serves .md as a download)."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>body{{font:14px system-ui,sans-serif;"
        "max-width:960px;margin:24px auto;padding:0 16px}pre{white-space:pre-wrap;"
        "font:13px/1.4 ui-monospace,Menlo,monospace}</style></head><body>"
        f'<p><a href="../index.html">&larr; history</a> · <a href="{esc(raw_href)}">markdown</a>'
        f"</p><pre>{esc(markdown)}</pre></body></html>\n"
    )
