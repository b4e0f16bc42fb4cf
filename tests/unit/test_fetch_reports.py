"""`site fetch-reports` (mlops_template.fetch_reports) against the fake GitHub
(tests/workflows/fake_github.py: auth, paging with Link headers, 302 to a signed URL,
410 for an expired artifact): which runs count, paging, expired and missing artifacts
skipped, no run at all, refused calls named, unsafe archives refused."""

from __future__ import annotations

import json
import stat
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.workflows.fake_github import FakeGitHub, zip_of
from typer.testing import CliRunner

from mlops_template import fetch_reports as fr
from mlops_template.cli import app
from mlops_template.sticky_comment import GitHub, GitHubError

REPO = "acme/mlops-demo"
TOKEN = "ghs_fetch-reports-test-token"
T0 = datetime(2026, 6, 1, 5, 17, tzinfo=UTC)


def when(day: int) -> str:
    return (T0 + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M:%SZ")


def reports(day: int) -> bytes:
    """The artifact of one monitor run: what monitor.yaml uploads from reports/monitor/."""
    drift = {"status": "ok", "created_at": when(day), "window": {"until": when(day)}}
    return zip_of(
        {
            "drift.json": json.dumps(drift),
            "drift.md": "# drift\n",
            "performance.json": json.dumps({"status": "ok", "created_at": when(day)}),
            "plots/age.png": b"\x89PNG",
        }
    )


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub(TOKEN).start()
    fake.add_repository(REPO)
    fake.add_workflow(REPO, "monitor.yaml")
    yield fake
    fake.stop()


def api(fake: FakeGitHub, token: str = TOKEN) -> GitHub:
    return GitHub(fake.url, token)


def test_the_newest_runs_reports_each_in_its_folder_without_the_token_on_the_zip(
    github: FakeGitHub, tmp_path: Path
) -> None:
    ids = [
        github.add_run(REPO, "monitor.yaml", when(d), {"drift-report": reports(d)})
        for d in range(3)
    ]
    out = tmp_path / "reports"
    fetched = fr.fetch_reports(api(github), REPO, out)
    assert [f.run_id for f in fetched] == ids[::-1]  # newest first
    for day, run_id in enumerate(ids):
        folder = out / f"run-{run_id}"
        assert json.loads((folder / "drift.json").read_text())["created_at"] == when(day)
        assert (folder / "plots" / "age.png").read_bytes() == b"\x89PNG"
    manifest = json.loads((out / fr.MANIFEST).read_text())
    assert manifest["branch"] == "main" and manifest["workflow"] == "monitor.yaml"
    assert [r["folder"] for r in manifest["runs"]] == [f"run-{i}" for i in ids[::-1]]
    assert manifest["runs"][0]["files"] == [
        "drift.json",
        "drift.md",
        "performance.json",
        "plots/age.png",
    ]
    # the token went to the API only; the signed URL was fetched without it
    assert len(github.blob_requests) == 3 and all(r["auth"] == "" for r in github.blob_requests)
    assert all(r["auth"] == f"Bearer {TOKEN}" for r in github.requests)


def test_only_successful_runs_of_the_monitors_own_triggers_on_the_default_branch_count(
    github: FakeGitHub, tmp_path: Path
) -> None:
    github.add_repository(REPO, default_branch="trunk")
    good = github.add_run(
        REPO, "monitor.yaml", when(0), {"drift-report": reports(0)}, branch="trunk"
    )
    dispatched = github.add_run(
        REPO, "monitor.yaml", when(1), {"drift-report": reports(1)}, branch="trunk",
        event="workflow_dispatch",
    )  # fmt: skip
    github.add_run(REPO, "monitor.yaml", when(2), {"drift-report": reports(2)}, branch="main")
    github.add_run(
        REPO, "monitor.yaml", when(3), {"drift-report": reports(3)}, branch="trunk",
        conclusion="failure",
    )  # fmt: skip
    # a pull request from a branch called "trunk" (into another branch) running the workflow
    github.add_run(
        REPO, "monitor.yaml", when(6), {"drift-report": reports(6)}, branch="trunk",
        event="pull_request",
    )  # fmt: skip
    # a fork's pull request from its own branch called "trunk" changing the workflow
    github.add_run(
        REPO, "monitor.yaml", when(4), {"drift-report": reports(4)}, branch="trunk",
        event="pull_request", head_repository="mallory/mlops-demo",
    )  # fmt: skip
    github.add_run(
        REPO, "monitor.yaml", when(5), {"drift-report": reports(5)}, branch="trunk",
        head_repository="mallory/mlops-demo",
    )  # fmt: skip
    fetched = fr.fetch_reports(api(github), REPO, tmp_path / "out")
    assert [f.run_id for f in fetched] == [dispatched, good]
    listing = next(r for r in github.requests if r["path"].endswith("/runs"))
    assert "branch=trunk" in listing["query"] and "status=success" in listing["query"]


def test_runs_are_read_page_after_page_and_only_as_far_as_the_limit(
    github: FakeGitHub, tmp_path: Path
) -> None:
    for day in range(105):
        github.add_run(REPO, "monitor.yaml", when(day), {"drift-report": reports(day)})
    fetched = fr.fetch_reports(api(github), REPO, tmp_path / "out", limit=102)
    assert len(fetched) == 102 and len({f.folder for f in fetched}) == 102
    assert fetched[0].created_at == when(104) and fetched[-1].created_at == when(3)
    pages = [r["query"] for r in github.requests if r["path"].endswith("/runs")]
    assert len(pages) == 2 and "page=2" in pages[1] and "branch=main" in pages[1]
    few = fr.fetch_reports(api(github), REPO, tmp_path / "few", limit=5)
    assert len(few) == 5
    pages = [r["query"] for r in github.requests if r["path"].endswith("/runs")]
    assert len(pages) == 3  # one more page, not every page


def test_expired_and_missing_artifacts_are_skipped_and_listed(
    github: FakeGitHub, tmp_path: Path
) -> None:
    kept = github.add_run(REPO, "monitor.yaml", when(0), {"drift-report": reports(0)})
    expired = github.add_run(
        REPO, "monitor.yaml", when(1), {"drift-report": reports(1)}, expired=("drift-report",)
    )
    other = github.add_run(REPO, "monitor.yaml", when(2), {"something-else": reports(2)})
    newest = github.add_run(REPO, "monitor.yaml", when(3), {"drift-report": reports(3)})
    fetched = {f.run_id: f for f in fr.fetch_reports(api(github), REPO, tmp_path / "out")}
    assert (
        fetched[expired].skipped == "the artifact has expired" and fetched[expired].folder is None
    )
    assert fetched[other].skipped == "no artifact named 'drift-report'"
    assert fetched[kept].folder and fetched[newest].folder
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(
        [fr.MANIFEST, f"run-{kept}", f"run-{newest}"]
    )
    # expired after the listing: the download answers 410, the run is skipped the same way
    url = github.artifacts[newest][0]["archive_download_url"]
    assert fr.download(api(github), url)  # control: served while unexpired
    github.artifacts[newest][0]["expired"] = True
    with pytest.raises(fr.ArtifactGone, match="HTTP 410"):
        fr.download(api(github), url)


def test_no_run_at_all_is_no_live_data_not_an_error(
    github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["site", "fetch-reports", "--repo", REPO, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads((out / fr.MANIFEST).read_text())["runs"] == []


@pytest.mark.parametrize(
    ("break_it", "status", "named"),
    [
        ("token", 401, "the runs of the workflow monitor.yaml"),
        ("permission", 403, "actions: read"),
        ("workflow", 404, "the runs of the workflow nowhere.yaml"),
        ("repository", 404, "the repository acme/elsewhere"),
    ],
)
def test_a_refused_call_is_an_error_naming_it_and_a_previous_fetch_is_kept(
    github: FakeGitHub,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    break_it: str,
    status: int,
    named: str,
) -> None:
    github.add_run(REPO, "monitor.yaml", when(0), {"drift-report": reports(0)})
    out = tmp_path / "out"
    monkeypatch.setenv("GITHUB_API_URL", github.url)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    args = ["site", "fetch-reports", "--repo", REPO, "--out", str(out)]
    assert CliRunner().invoke(app, args).exit_code == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    if break_it == "token":
        monkeypatch.setenv("GITHUB_TOKEN", "ghs_not-the-token")
        args += ["--branch", "main"]
    elif break_it == "permission":
        github.actions_read = False
    elif break_it == "workflow":
        args += ["--workflow", "nowhere.yaml"]
    else:
        args[3] = "acme/elsewhere"
    with pytest.raises(GitHubError) as caught:
        fr.fetch_reports(
            GitHub(github.url, "ghs_not-the-token" if break_it == "token" else TOKEN),
            args[3],
            tmp_path / "direct",
            workflow=args[args.index("--workflow") + 1] if "--workflow" in args else "monitor.yaml",
            branch="main" if break_it == "token" else None,
        )
    assert caught.value.status == status and named in str(caught.value)
    assert f"HTTP {status}" in str(caught.value) and "GET " in str(caught.value)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before  # nothing lost
    assert not (tmp_path / "direct").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_no_token_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_TOKEN", raising=False)
    monkeypatch.delenv("GH_TOKEN", raising=False)
    assert fr.run_fetch(REPO, tmp_path / "out", "monitor.yaml", "drift-report", 5, None) == 2
    assert fr.token_from_env({"GH_TOKEN": "b"}) == "b"
    assert fr.token_from_env({"GITHUB_TOKEN": "a", "GH_TOKEN": "b"}) == "a"


def test_bad_options_are_errors_naming_them(github: FakeGitHub, tmp_path: Path) -> None:
    for kwargs, named in [
        ({"repo": "acme"}, "--repo"),
        ({"workflow": "../x.yaml"}, "--workflow"),
        ({"limit": 0}, "--limit"),
    ]:
        with pytest.raises(ValueError, match=named):
            fr.fetch_reports(api(github), **({"repo": REPO, "out": tmp_path / "o"} | kwargs))


def zip_with(name: str, mode: int | None = None) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("drift.json", "{}")
        info = zipfile.ZipInfo(name)
        if mode is not None:
            info.external_attr = mode << 16
        archive.writestr(info, "/etc/passwd" if mode and stat.S_ISLNK(mode) else "pwned")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("entry", "mode"),
    [
        ("../evil.json", None),
        ("plots/../../evil.json", None),
        ("/tmp/evil.json", None),
        ("C:/evil.json", None),
        ("..\\evil.json", None),
        ("link.json", stat.S_IFLNK | 0o777),
    ],
)
def test_an_unsafe_entry_refuses_the_whole_artifact_and_writes_nothing(
    github: FakeGitHub, tmp_path: Path, entry: str, mode: int | None
) -> None:
    safe = github.add_run(REPO, "monitor.yaml", when(0), {"drift-report": reports(0)})
    bad = github.add_run(REPO, "monitor.yaml", when(1), {"drift-report": zip_with(entry, mode)})
    out = tmp_path / "deep" / "out"
    fetched = {f.run_id: f for f in fr.fetch_reports(api(github), REPO, out)}
    assert fetched[bad].skipped.startswith("refused: entry") and repr(entry) in fetched[bad].skipped
    assert fetched[bad].folder is None and not (out / f"run-{bad}").exists()
    assert fetched[safe].folder == f"run-{safe}"
    written = {p.name for p in tmp_path.rglob("*")}
    assert "evil.json" not in written and "link.json" not in written


def test_archives_that_are_not_zips_or_too_large_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(fr.ArchiveRefused, match="not a zip"):
        fr.unpack(b"not a zip", tmp_path / "a")
    monkeypatch.setattr(fr, "MAX_UNPACKED_BYTES", 10)
    with pytest.raises(fr.ArchiveRefused, match="bytes unpacked"):
        fr.unpack(zip_of({"drift.json": "x" * 11}), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert fr.unpack(zip_of({"drift.json": "x" * 10}), tmp_path / "c") == ["drift.json"]


def test_the_next_page_and_the_artifact_url_must_be_under_the_api(github: FakeGitHub) -> None:
    with pytest.raises(GitHubError, match="not under"):
        fr.download(api(github), "https://evil.example/repos/acme/x/actions/artifacts/1/zip")
