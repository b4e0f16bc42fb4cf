"""The history page in a real browser: headless Chromium (Debian's `chromium`) opens
site/index.html from a file:// URL, with no server and no network (every host name
resolves to nothing).

What is checked: no console message at all (the page has no script, so any message is an
error: a script someone injected, a CSP or parse complaint), the test registry's versions
and the prod row are in the rendered DOM, and a screenshot is not blank. Each check is
shown to fail on a page made to fail it (a script error; a blank page).

Chromium is driven by its own command-line flags: `--dump-dom` prints the DOM after
load, `--enable-logging=stderr --v=0` prints every console message as a `CONSOLE` line,
`--screenshot`. As root it needs `--no-sandbox`. Skipped (with the reason) only when
Chromium is not installed or does not start (.ci/run installs it with apt-get).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from tests.site_registry import PROD, VERSIONS, Elements, make_registry, write_reports

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1100, 1800)


def browser_args(profile: Path) -> list[str]:
    args = [
        str(CHROMIUM),
        "--headless",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: any host name fails
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
    ]
    if os.geteuid() == 0:
        args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return args


def _why_not_chromium() -> str | None:
    if CHROMIUM is None:
        return "chromium is not installed (apt-get install chromium; .ci/run does)"
    try:
        probe = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--version"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"chromium does not start: {exc}"
    if probe.returncode != 0:
        return f"chromium does not start: {(probe.stderr or probe.stdout).strip()[-300:]}"
    return None


WHY_NOT = _why_not_chromium()
pytestmark = pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))


def load(page: Path, tmp: Path) -> tuple[str, list[str]]:
    """(the DOM after load, the console messages) of PAGE opened from a file:// URL."""
    result = subprocess.run(
        [*browser_args(tmp / "profile-dom"), "--dump-dom", page.resolve().as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, console_messages(result.stderr)


def console_messages(stderr: str) -> list[str]:
    """Chromium's log lines of console messages: `[...:INFO:CONSOLE:1] "text", source: ...`."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def screenshot(page: Path, tmp: Path) -> Path:
    target = tmp / f"{page.stem}.png"
    result = subprocess.run(
        [
            *browser_args(tmp / "profile-shot"),
            "--hide-scrollbars",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--screenshot={target}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and target.is_file(), result.stderr[-2000:]
    return target


def blank_reasons(png: Path) -> list[str]:
    """Why the screenshot looks blank (empty list: it does not)."""
    from PIL import Image

    with Image.open(png) as image:
        rgb = image.convert("RGB")
        total = rgb.width * rgb.height
        counts = Counter({colour: n for n, colour in rgb.getcolors(maxcolors=total) or []})
    background, most = counts.most_common(1)[0]
    drawn = 1 - most / total
    reasons = []
    if len(counts) < 50:
        reasons.append(f"only {len(counts)} distinct colours")
    if drawn < 0.05:
        reasons.append(f"only {drawn:.1%} of the pixels differ from the background {background}")
    return reasons


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """site/index.html of the test registry (three versions, a rollback) and reports,
    written by the command as `make site` runs it."""
    root = tmp_path_factory.mktemp("browser") / "project"
    make_registry(root)
    write_reports(root)
    result = subprocess.run(
        [sys.executable, "-m", "mlops_template", "site", "--out", "site"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return root / "site" / "index.html"


def test_the_page_loads_without_console_messages_and_shows_every_version(
    site: Path, tmp_path: Path
) -> None:
    dom, console = load(site, tmp_path)
    assert console == []
    parsed = Elements(dom)
    rows = [a["data-version"] for a in parsed.find("tr") if "data-version" in a]
    assert sorted(rows) == sorted(VERSIONS)
    assert [a["data-version"] for a in parsed.find("tr", class_="prod")] == [PROD]
    assert len(parsed.find("svg")) == 3  # two live-performance charts, one drift chart
    assert "model#prod!#4" in "".join(parsed.text)  # the rollback


def test_the_console_check_catches_a_script_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><p>x</p><script>notDefinedAnywhere();</script>")
    _, console = load(bad, tmp_path)
    assert any("Uncaught ReferenceError: notDefinedAnywhere" in line for line in console), console


def test_the_screenshot_is_not_blank(site: Path, tmp_path: Path) -> None:
    png = screenshot(site, tmp_path)
    assert blank_reasons(png) == []


def test_the_blank_check_catches_a_blank_page(tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    assert blank_reasons(screenshot(empty, tmp_path))
