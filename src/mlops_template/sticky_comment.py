"""Post or update the one sticky report comment of a pull request (standard library only).

Why not `cml comment update`: CML 0.20 lists a PR's comments with one
`issues.listComments` call and no pagination (src/drivers/github.js `prComments`), so
it sees only the first 30. On a busy PR its own comment is on a later page: it finds
nothing and posts a new one on every run. This reads every page (`per_page=100`,
following the `Link: <...>; rel="next"` header), edits the latest comment carrying the
watermark, and creates one only when there is none.

The watermark is CML's own (src/watermark.js), so comments CML posted before are found
and a later `cml comment update` would find ours:
    ![](https://cml.dev/watermark.png#<commit sha> "CML watermark <title>")
appended after a blank line, with `_`, `*`, `[` and `<` of the title backslash-escaped;
a comment matches whatever its sha.

`python -m mlops_template.sticky_comment --repo OWNER/NAME --pr N --title TITLE
--sha SHA REPORT.md`: the token comes from GITHUB_TOKEN, the API from GITHUB_API_URL
(set on every Actions runner). Standard library only: pr-comment.yaml runs it from a
sparse checkout with the runner's python3 and nothing installed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_template import log

logger = log.get_logger("sticky_comment")

WATERMARK_IMAGE = "https://cml.dev/watermark.png"
DEFAULT_API = "https://api.github.com"
PER_PAGE = 100  # GitHub's maximum for issue comments (default 30)
TIMEOUT_S = 30
REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")
SHA = re.compile(r"^[0-9a-fA-F]{1,64}$")  # CML matches any hex run
NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubError(RuntimeError):
    """A refused or failed API call, naming the call (`status`: the HTTP status, if any)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def watermark_title(title: str) -> str:
    """CML's `title` getter: GitHub returns these characters escaped in bodies."""
    text = f"CML watermark {title}".strip()
    for char in ("_", "*", "[", "<"):
        text = text.replace(char, "\\" + char)
    return text


def watermark(title: str, sha: str) -> str:
    if not SHA.match(sha):
        raise ValueError(f"--sha must be a hex commit sha, got {sha!r}")
    return f'![]({WATERMARK_IMAGE}#{sha} "{watermark_title(title)}")'


def with_watermark(report: str, title: str, sha: str) -> str:
    return f"{report}\n\n{watermark(title, sha)}"


def carries_watermark(body: str, title: str) -> bool:
    """CML's `isIn`: the watermark image with this title, any sha."""
    pattern = (
        r"!\[\]\("
        + re.escape(WATERMARK_IMAGE)
        + r"#[0-9a-fA-F]+ \""
        + re.escape(watermark_title(title))
        + r"\"\)"
    )
    return re.search(pattern, body or "") is not None


def find_comment(comments: list[dict[str, Any]], title: str) -> dict[str, Any] | None:
    """The latest comment carrying the watermark (CML: comments.reverse().find(...))."""
    for comment in reversed(comments):
        if carries_watermark(comment.get("body") or "", title):
            return comment
    return None


@dataclass
class GitHub:
    api_url: str
    token: str

    def call(self, method: str, url: str, body: Any = None) -> tuple[Any, str]:
        """(decoded JSON, Link header) of one request; GitHubError when refused."""
        if not url.startswith(("http://", "https://")):
            url = self.api_url.rstrip("/") + "/" + url.lstrip("/")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Authorization", f"Bearer {self.token}")
        request.add_header("Accept", "application/vnd.github+json")
        request.add_header("X-GitHub-Api-Version", "2022-11-28")
        request.add_header("User-Agent", "mlops-template-sticky-comment")
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                payload = response.read()
                link = response.headers.get("Link", "")
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", "replace")[:300]
            raise GitHubError(f"{method} {url}: HTTP {error.code} {detail}", error.code) from error
        except (urllib.error.URLError, TimeoutError) as error:
            raise GitHubError(f"{method} {url}: {error}") from error
        return (json.loads(payload) if payload else None), link

    def paginate(self, path: str) -> list[Any]:
        """Every item of a list endpoint, page after page (Link rel="next")."""
        return list(self.items(path))

    def items(self, path: str, key: str | None = None) -> Iterator[Any]:
        """The items of a list endpoint, one page at a time (Link rel="next"), fetched only
        as far as they are consumed. `key`: the list inside an object page (the Actions
        endpoints answer {"total_count": N, KEY: [...]})."""
        url: str | None = f"{path}{'&' if '?' in path else '?'}per_page={PER_PAGE}"
        while url:
            page, link = self.call("GET", url)
            if key is not None and isinstance(page, dict):
                page = page.get(key)
            if not isinstance(page, list):
                expected = f"an object with a list {key!r}" if key else "a list"
                raise GitHubError(f"GET {url}: expected {expected}, got {type(page).__name__}")
            yield from page
            found = NEXT.search(link)
            url = found.group(1) if found else None
            if url and not url.startswith(self.api_url.rstrip("/") + "/"):
                # The token goes with every page: only ever to the API it was meant for.
                raise GitHubError(f"GET {path}: next page {url} is not under {self.api_url}")


def upsert(
    api: GitHub, repo: str, number: int, report: str, title: str, sha: str
) -> tuple[str, dict[str, Any]]:
    """('updated' | 'created', the comment as GitHub returned it)."""
    if not REPO.match(repo):
        raise ValueError(f"--repo must be OWNER/NAME, got {repo!r}")
    body = with_watermark(report, title, sha)
    comments = api.paginate(f"repos/{repo}/issues/{number}/comments")
    ours = find_comment(comments, title)
    if ours is not None:
        updated, _ = api.call("PATCH", f"repos/{repo}/issues/comments/{ours['id']}", {"body": body})
        return "updated", updated
    created, _ = api.call("POST", f"repos/{repo}/issues/{number}/comments", {"body": body})
    return "created", created


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_template.sticky_comment")
    parser.add_argument("--repo", required=True, help="OWNER/NAME")
    parser.add_argument("--pr", required=True, type=int, help="pull request number")
    parser.add_argument("--title", required=True, help="watermark title (one comment per title)")
    parser.add_argument("--sha", required=True, help="commit the report is about (hex)")
    parser.add_argument("report", type=Path)
    args = parser.parse_args(argv)
    token = os.environ.get("GITHUB_TOKEN", "")
    if not token:
        logger.error("sticky_comment: GITHUB_TOKEN is not set (a token with pull-requests: write)")
        return 2
    try:
        report = args.report.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        logger.error("sticky_comment: cannot read the report %s: %s", args.report, error)
        return 2
    api = GitHub(os.environ.get("GITHUB_API_URL") or DEFAULT_API, token)
    try:
        action, comment = upsert(api, args.repo, args.pr, report, args.title, args.sha)
    except (GitHubError, ValueError) as error:
        logger.error("sticky_comment: %s", error)
        return 1
    logger.info("sticky_comment: %s %s", action, comment.get("html_url", comment.get("id")))
    return 0


if __name__ == "__main__":
    log.configure(False)
    sys.exit(main(sys.argv[1:]))
