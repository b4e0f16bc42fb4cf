"""The sticky report comment is found on any page and edited, never duplicated.

Against a fake GitHub REST API on 127.0.0.1 (tests/workflows/fake_github.py) that pages
like GitHub (per_page default 30, max 100, Link rel="next"). The watermark strings are
CML's own, as its tests (src/watermark.test.js) spell them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.helpers import TEMPLATE_ROOT
from tests.workflows.fake_github import FakeGitHub

from mlops_template.sticky_comment import (
    GitHub,
    GitHubError,
    carries_watermark,
    upsert,
    watermark,
    with_watermark,
)

REPO = "acme/demo"
PR = 12
TITLE = "mlops-template model report"
SHA = "0123456789abcdef0123456789abcdef01234567"
TOKEN = "ghs_sticky_comment_test_token_0123456789"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(TOKEN).start()
    fake.open_issue(REPO, PR)
    yield fake
    fake.stop()


def api(fake: FakeGitHub, token: str = TOKEN) -> GitHub:
    return GitHub(fake.url, token)


def chatter(fake: FakeGitHub, n: int) -> None:
    for i in range(n):
        fake.add_comment(REPO, PR, f"comment {i}: looks good, also cml watermark maybe")


# --- the watermark is CML's -------------------------------------------------------------


def test_the_watermark_is_cmls_image_line() -> None:
    # src/watermark.test.js: 'some report\n\n![](https://cml.dev/watermark.png#deadbeef
    # "CML watermark some-label")'
    assert with_watermark("some report", "some-label", "deadbeef") == (
        'some report\n\n![](https://cml.dev/watermark.png#deadbeef "CML watermark some-label")'
    )


def test_special_characters_are_escaped_like_cml_does() -> None:
    assert watermark("custom_1[*]-vm <x>", "abc") == (
        '![](https://cml.dev/watermark.png#abc "CML watermark custom\\_1\\[\\*]-vm \\<x>")'
    )
    assert carries_watermark(with_watermark("r", "custom_1[*]-vm", "abc"), "custom_1[*]-vm")


def test_a_watermark_matches_whatever_its_sha_but_not_another_title() -> None:
    body = with_watermark("old report", TITLE, "feedc0de")
    assert carries_watermark(body, TITLE)
    assert not carries_watermark(body, TITLE + " v2")
    assert not carries_watermark(f"quoting {TITLE} in prose", TITLE)


def test_a_sha_that_is_not_hex_is_refused() -> None:
    with pytest.raises(ValueError, match="hex commit sha"):
        watermark(TITLE, "main")


# --- find on any page, edit, never duplicate --------------------------------------------


def test_our_comment_on_page_two_is_edited_and_nothing_is_created(github: FakeGitHub) -> None:
    chatter(github, 120)
    ours = github.add_comment(REPO, PR, with_watermark("old", TITLE, "feedc0de"), "bot")
    chatter(github, 30)  # 151 comments: ours is the 121st, on page 2 of 100 (page 5 of 30)
    action, comment = upsert(api(github), REPO, PR, "# new report", TITLE, SHA)
    assert action == "updated" and comment["id"] == ours
    assert [w["method"] for w in github.writes()] == ["PATCH"]
    assert github.writes()[0]["path"] == f"/repos/{REPO}/issues/comments/{ours}"
    pages = [r["query"] for r in github.requests if r["method"] == "GET"]
    assert pages == ["per_page=100", "per_page=100&page=2"]
    assert len(github.comments(REPO, PR)) == 151
    edited = next(c for c in github.comments(REPO, PR) if c["id"] == ours)
    assert edited["body"] == with_watermark("# new report", TITLE, SHA)


def test_first_page_only_would_have_missed_it(github: FakeGitHub) -> None:
    """The bug this fixes: CML's single listComments call gets GitHub's default 30."""
    chatter(github, 45)
    github.add_comment(REPO, PR, with_watermark("old", TITLE, "feedc0de"), "bot")
    first, _ = api(github).call("GET", f"repos/{REPO}/issues/{PR}/comments")
    assert len(first) == 30 and not any(carries_watermark(c["body"], TITLE) for c in first)
    action, _ = upsert(api(github), REPO, PR, "new", TITLE, SHA)
    assert action == "updated" and len(github.comments(REPO, PR)) == 46


def test_a_comment_cml_posted_earlier_is_the_one_edited(github: FakeGitHub) -> None:
    # What `cml comment update --watermark-title=...` left: the report, a blank line, the
    # watermark of the commit it ran on.
    cml_body = (
        "## Model report\n\n| metric | base |\n\n"
        '![](https://cml.dev/watermark.png#9f8e7d6c5b4a "CML watermark mlops-template model report")'
    )
    chatter(github, 3)
    ours = github.add_comment(REPO, PR, cml_body, "github-actions[bot]")
    action, comment = upsert(api(github), REPO, PR, "new", TITLE, SHA)
    assert action == "updated" and comment["id"] == ours


def test_the_latest_of_two_watermarked_comments_is_edited(github: FakeGitHub) -> None:
    github.add_comment(REPO, PR, with_watermark("first", TITLE, "aaaa"), "bot")
    latest = github.add_comment(REPO, PR, with_watermark("second", TITLE, "bbbb"), "bot")
    _, comment = upsert(api(github), REPO, PR, "new", TITLE, SHA)
    assert comment["id"] == latest  # as CML: comments.reverse().find(...)


def test_without_our_comment_one_is_created(github: FakeGitHub) -> None:
    chatter(github, 31)
    github.add_comment(REPO, PR, with_watermark("other", "another report", "abcd"), "bot")
    action, _ = upsert(api(github), REPO, PR, "# report", TITLE, SHA)
    assert action == "created"
    assert [w["method"] for w in github.writes()] == ["POST"]
    assert github.comments(REPO, PR)[-1]["body"] == with_watermark("# report", TITLE, SHA)
    again, _ = upsert(api(github), REPO, PR, "# report 2", TITLE, SHA)
    assert again == "updated" and len(github.comments(REPO, PR)) == 33


# --- failures are loud -----------------------------------------------------------------


def test_a_bad_token_is_refused_and_nothing_is_written(github: FakeGitHub) -> None:
    with pytest.raises(GitHubError, match=r"HTTP 401.*Bad credentials"):
        upsert(api(github, "wrong"), REPO, PR, "x", TITLE, SHA)
    assert github.writes() == []


def test_an_unknown_pr_is_a_404(github: FakeGitHub) -> None:
    with pytest.raises(GitHubError, match=rf"/issues/{PR + 1}/comments.*HTTP 404"):
        upsert(api(github), REPO, PR + 1, "x", TITLE, SHA)


def test_a_next_page_outside_the_api_is_not_followed(
    github: FakeGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_call = GitHub.call

    def elsewhere(self: GitHub, method: str, url: str, body: object = None) -> tuple:
        page, _ = real_call(self, method, url, body)
        return page, '<https://evil.example/steal?page=2>; rel="next"'

    monkeypatch.setattr(GitHub, "call", elsewhere)
    with pytest.raises(GitHubError, match="is not under"):
        api(github).paginate(f"repos/{REPO}/issues/{PR}/comments")


def module(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(TEMPLATE_ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "mlops_template.sticky_comment", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        cwd=TEMPLATE_ROOT,
    )


def test_module_entry_updates_through_github_api_url(github: FakeGitHub, tmp_path: Path) -> None:
    ours = github.add_comment(REPO, PR, with_watermark("old", TITLE, "feedc0de"), "bot")
    report = tmp_path / "report.md"
    report.write_text("# from the entry point\n")
    args = ("--repo", REPO, "--pr", str(PR), "--title", TITLE, "--sha", SHA, str(report))
    done = module(*args, env={"GITHUB_TOKEN": TOKEN, "GITHUB_API_URL": github.url})
    assert done.returncode == 0, done.stderr
    assert "updated" in done.stderr
    assert github.comments(REPO, PR)[0]["id"] == ours
    assert github.comments(REPO, PR)[0]["body"].startswith("# from the entry point\n")
    no_token = module(*args, env={"GITHUB_API_URL": github.url})
    assert no_token.returncode == 2 and "GITHUB_TOKEN is not set" in no_token.stderr
