"""A fork's report posted under the bot's name notifies nobody and fits GitHub's limit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_template.comment import (
    GITHUB_COMMENT_LIMIT,
    ZERO_WIDTH_SPACE,
    cap_size,
    for_comment,
    neutralize_mentions,
)

ZW = ZERO_WIDTH_SPACE
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("thanks @octocat!", f"thanks @{ZW}octocat!"),
        ("@octocat at the start", f"@{ZW}octocat at the start"),
        ("team @acme/reviewers", f"team @{ZW}acme/reviewers"),
        ("(@a-b) and `@c`", f"(@{ZW}a-b) and `@{ZW}c`"),
        ("line\n@dependabot merge", f"line\n@{ZW}dependabot merge"),
    ],
)
def test_mentions_are_defused(text: str, expected: str) -> None:
    assert neutralize_mentions(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "mail jane.doe+ci@example.com or ops@corp.io",
        "a lone @ sign, @@, @-x and @ space",
        "pip install pkg@git+https://host/x and image@sha256:ab",
    ],
)
def test_addresses_and_non_mentions_are_left_alone(text: str) -> None:
    assert neutralize_mentions(text) == text


def test_defusing_is_idempotent_and_displays_the_same_text() -> None:
    once = neutralize_mentions("cc @a @b")
    assert neutralize_mentions(once) == once
    assert once.replace(ZW, "") == "cc @a @b"


def test_a_report_within_the_limit_is_unchanged() -> None:
    text = "# Report\n" + "x" * 500
    assert cap_size(text, limit=1000) == text


def test_an_oversize_report_is_cut_at_a_line_with_a_visible_note() -> None:
    lines = [f"| row {i} | {'v' * 40} |" for i in range(5000)]
    text = "\n".join(lines)
    capped = cap_size(text, limit=10_000)
    assert len(capped) <= 10_000 < len(text)
    kept, note = capped.split("\n\n_… report truncated", 1)
    assert kept.split("\n") == lines[: len(kept.split("\n"))]  # whole lines only
    assert str(GITHUB_COMMENT_LIMIT) in note and "pr-report artifact" in note


def test_a_single_huge_line_is_cut_too() -> None:
    capped = cap_size("y" * 100_000, limit=5_000)
    assert len(capped) <= 5_000 and "report truncated" in capped


def test_default_limit_leaves_room_under_githubs_limit() -> None:
    capped = for_comment(("@x " * 10 + "\n") * 10_000)
    assert len(capped) < GITHUB_COMMENT_LIMIT - 1_000
    assert "@x" not in capped


def test_limit_too_small_for_the_note_is_refused() -> None:
    with pytest.raises(ValueError, match="too small"):
        cap_size("text", limit=10)


def _module(*args: str) -> subprocess.CompletedProcess[str]:
    # As pr-comment.yaml runs it: plain python, the sources on PYTHONPATH, nothing installed.
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    return subprocess.run(
        [sys.executable, "-B", "-m", "mlops_template.comment", *args],
        capture_output=True,
        text=True,
        env=env,
    )


def test_module_entry_writes_the_safe_comment(tmp_path: Path) -> None:
    (tmp_path / "report.md").write_text("ping @maintainer\n", encoding="utf-8")
    done = _module(str(tmp_path / "report.md"), str(tmp_path / "comment.md"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "comment.md").read_text(encoding="utf-8") == f"ping @{ZW}maintainer\n"


def test_module_entry_names_a_missing_report(tmp_path: Path) -> None:
    done = _module(str(tmp_path / "nope.md"), str(tmp_path / "comment.md"))
    assert done.returncode == 2 and "nope.md" in done.stderr
    assert not (tmp_path / "comment.md").exists()
