"""Make a report safe to post as a comment under the bot's name (standard library only).

A fork's report is built by the fork's code, so its text is the fork's: pr-comment.yaml
posts it with a write token, as the repository's bot. Two things in it would act beyond
the comment: an `@user` / `@org/team` mention notifies that account (the bot pinging
strangers on a fork's behalf), and a body over GitHub's 65536-character limit makes
the API refuse the comment. `for_comment` defuses mentions with a zero-width space after
the `@` (the text reads the same; e-mail addresses are left alone) and cuts an oversize
report at a line boundary with a visible note.

Standard library only: the commenter job has no environment of the template installed
(it never runs the PR's code) and calls `python3 -m mlops_template.comment IN OUT` from
a sparse checkout of the default branch.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mlops_template import log

logger = log.get_logger("comment")

GITHUB_COMMENT_LIMIT = 65_536
# Room left under GitHub's limit for the watermark line CML appends.
COMMENT_CHAR_LIMIT = 60_000
ZERO_WIDTH_SPACE = "\u200b"
# `@` + a GitHub login (alphanumerics and hyphens); not after a word character, `.`, `+`,
# `-`, `/` or another `@`, so `name@example.com`, `a/b@c` and `@@x` are not mentions.
MENTION = re.compile(r"(?<![\w.+/@-])@(?=[A-Za-z0-9])")


def neutralize_mentions(text: str) -> str:
    """`@user` -> `@\\u200buser`: displayed the same, notifies nobody. Idempotent."""
    return MENTION.sub("@" + ZERO_WIDTH_SPACE, text)


def cap_size(text: str, limit: int = COMMENT_CHAR_LIMIT) -> str:
    """TEXT if it fits in LIMIT characters, else its first lines and a note saying so."""
    if limit < 200:
        raise ValueError(f"comment limit {limit} is too small for the truncation note")
    if len(text) <= limit:
        return text
    note = (
        f"\n\n_… report truncated: over {limit} characters (GitHub refuses comments over "
        f"{GITHUB_COMMENT_LIMIT}); the full report is in the run's pr-report artifact._\n"
    )
    budget = limit - len(note)
    cut = text.rfind("\n", 0, budget)
    return text[: cut if cut > 0 else budget] + note


def for_comment(text: str, limit: int = COMMENT_CHAR_LIMIT) -> str:
    return cap_size(neutralize_mentions(text), limit)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        logger.error("usage: python -m mlops_template.comment REPORT.md OUT.md")
        return 2
    source, target = Path(argv[0]), Path(argv[1])
    try:
        text = source.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        logger.error("comment: cannot read the report %s: %s", source, error)
        return 2
    safe = for_comment(text)
    target.write_text(safe, encoding="utf-8")
    logger.info("comment: %s -> %s (%d -> %d characters)", source, target, len(text), len(safe))
    return 0


if __name__ == "__main__":
    log.configure(False)
    sys.exit(main(sys.argv[1:]))
