"""The history page in a real browser: headless Chromium (Debian's `chromium`) opens
site/index.html from a file:// URL, with no server and no network (every host name
resolves to nothing).

What is checked: no console message at all (the page has no script, so any message is an
error: a script someone injected, a CSP or parse complaint), no error in the browser's
log either (a resource that failed to load: the page must fetch nothing), the test
registry's versions and the prod row are in the rendered DOM, and a screenshot is not
blank. Each check is shown to fail on a page made to fail it (a script error, a missing
image; a blank page).

Chromium is driven by its own command-line flags: `--dump-dom` prints the DOM after
load, `--enable-logging=stderr --v=0` prints every console message as a `CONSOLE` line,
`--screenshot`; and the DevTools protocol over `--remote-debugging-pipe` (JSON messages
separated by NUL on file descriptors 3 and 4: no websocket library needed) reports
console calls, exceptions and log entries with their level. As root it needs
`--no-sandbox`. Skipped (with the reason) only when Chromium is not installed or does not
start (.ci/run installs it with apt-get).
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
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
# slow: a real browser per check (and the forks' nested `make test` runs skip it)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


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


class DevTools:
    """Chromium's DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out)."""

    def __init__(self, profile: Path) -> None:
        ours_in, theirs_out = os.pipe()  # Chromium writes fd 4, we read
        theirs_in, ours_out = os.pipe()  # we write, Chromium reads fd 3

        args = [a for a in browser_args(profile) if not a.startswith(("--enable-logging", "--v="))]
        # bash moves the pipe ends to 3 and 4 (dash: one-digit fds only; no preexec_fn: threads).
        moves = f"3<&{theirs_in} 4>&{theirs_out} {theirs_in}<&- {theirs_out}>&-"
        self.process = subprocess.Popen(
            ["bash", "-c", f'exec "$@" {moves}', "bash", *args, "--remote-debugging-pipe"],
            pass_fds=(theirs_in, theirs_out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(theirs_in)
        os.close(theirs_out)
        self.read, self.write = ours_in, ours_out
        self.buffer = b""
        self.events: list[dict] = []
        self.last_id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self.last_id += 1
        message = {"id": self.last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.write, json.dumps(message).encode() + b"\0")
        return self.last_id

    def wait(self, match, seconds: float) -> dict | None:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + seconds
        while True:
            while b"\0" in self.buffer:
                line, self.buffer = self.buffer.split(b"\0", 1)
                message = json.loads(line)
                self.events.append(message)
                if match(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read], [], [], min(left, 0.5))[0]:
                if left <= 0:
                    return None
                continue
            chunk = os.read(self.read, 1 << 16)
            if not chunk:
                return None
            self.buffer += chunk

    def call(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        sent = self.send(method, params, session)
        answer = self.wait(lambda m: m.get("id") == sent, 30)
        assert answer is not None and "error" not in answer, (method, answer)
        return answer["result"]

    def close(self) -> None:
        try:
            self.send("Browser.close")
            self.process.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
        finally:
            os.close(self.read)
            os.close(self.write)


def browser_errors(page: Path, tmp: Path) -> list[str]:
    """Console calls, uncaught exceptions and error log entries while PAGE loads."""
    tools = DevTools(tmp / "profile-cdp")
    try:
        target = tools.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page"):
            tools.call(f"{domain}.enable", session=session)
        tools.call("Page.navigate", {"url": page.resolve().as_uri()}, session)
        loaded = tools.wait(lambda m: m.get("method") == "Page.loadEventFired", 60)
        assert loaded is not None, "the page did not finish loading"
        tools.wait(lambda m: False, 0.5)  # late messages
    finally:
        tools.close()
    found = []
    for event in tools.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            values = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            found.append(f"console.{params['type']}: {' '.join(values)}")
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            found.append(f"exception: {details.get('exception', {}).get('description', details)}")
        elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
            found.append(f"log {params['entry']['level']}: {params['entry']['text']}")
    return found


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


def test_the_devtools_protocol_sees_no_error_while_the_page_loads(
    site: Path, tmp_path: Path
) -> None:
    assert browser_errors(site, tmp_path) == []


def test_the_devtools_check_catches_script_errors_and_failed_requests(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><img src="missing.png"><link rel="stylesheet" '
        'href="https://fonts.example.com/x.css"><script>console.error("boom");'
        "notDefinedAnywhere();</script>"
    )
    errors = browser_errors(bad, tmp_path)
    assert "console.error: boom" in errors, errors
    assert any("notDefinedAnywhere is not defined" in e for e in errors), errors
    assert any("ERR_FILE_NOT_FOUND" in e for e in errors), errors  # the missing image
    assert any("ERR_NAME_NOT_RESOLVED" in e for e in errors), errors  # no network


def test_the_screenshot_is_not_blank(site: Path, tmp_path: Path) -> None:
    png = screenshot(site, tmp_path)
    assert blank_reasons(png) == []


def test_the_blank_check_catches_a_blank_page(tmp_path: Path) -> None:
    empty = tmp_path / "empty.html"
    empty.write_text("<!DOCTYPE html><html><body></body></html>")
    assert blank_reasons(screenshot(empty, tmp_path))
