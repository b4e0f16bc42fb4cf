"""The README tells the truth: every `make` target and CLI command it shows exists, and
its two set-up commands are the ones CI relies on."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from tests.helpers import TEMPLATE_ROOT

README = (TEMPLATE_ROOT / "README.md").read_text()
MAKEFILE = (TEMPLATE_ROOT / "Makefile").read_text()
PACKAGE = "mlops_template"


def _code() -> str:
    """Everything the README shows as code: fenced blocks and inline `code`."""
    fenced = re.findall(r"```[a-z]*\n(.*?)```", README, flags=re.S)
    inline = re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", README, flags=re.S))
    return "\n".join(fenced + inline)


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-zA-Z][\w-]*):", MAKEFILE, flags=re.M))


def _readme_make_targets() -> set[str]:
    return set(re.findall(r"\bmake ([a-z][\w-]*)", _code()))


def _readme_cli_commands() -> set[tuple[str, ...]]:
    found = set()
    for match in re.finditer(rf"python -m {PACKAGE}((?: [a-z][\w-]*)+)", _code()):
        found.add(tuple(match.group(1).split()))
    return found


def test_the_readme_shows_make_targets_and_cli_commands() -> None:
    assert {
        "run",
        "test",
        "report",
        "serve",
        "rollback",
        "init",
        "doctor",
    } <= _readme_make_targets()
    assert ("ingest",) in _readme_cli_commands()


@pytest.mark.parametrize("target", sorted(_readme_make_targets()))
def test_every_make_target_in_the_readme_exists_and_is_documented(target: str) -> None:
    assert target in _make_targets(), (
        f"README shows `make {target}`, the Makefile has no such target"
    )
    assert re.search(rf"^{re.escape(target)}:.*## ", MAKEFILE, flags=re.M), (
        f"`make {target}` has no ## help line"
    )


@pytest.mark.parametrize("words", sorted(_readme_cli_commands()), ids=" ".join)
def test_every_cli_command_in_the_readme_exists(words: tuple[str, ...]) -> None:
    # Words after the command may be arguments: the longest prefix that is a command must
    # answer --help, and a one-word command must be one.
    for end in range(len(words), 0, -1):
        done = subprocess.run(
            [sys.executable, "-m", PACKAGE, *words[:end], "--help"],
            capture_output=True,
            text=True,
            cwd=TEMPLATE_ROOT,
        )
        if done.returncode == 0:
            assert "Usage:" in done.stdout
            return
    pytest.fail(f"`python -m {PACKAGE} {' '.join(words)}`: no such command ({done.stderr[-300:]})")


def test_the_two_setup_commands_are_what_ci_runs() -> None:
    setup = re.search(r"## Set-up: two commands.*?```bash\n(.*?)```", README, flags=re.S)
    assert setup, "README has no set-up block"
    commands = [line.split("#")[0].strip() for line in setup.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    ci = (TEMPLATE_ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, flags=re.M), ".ci/run must run the README's `make test`"
    assert re.search(r"^run: .*\binstall\b.*\brepro\b", MAKEFILE, flags=re.M), (
        "`make run` installs then reproduces"
    )
