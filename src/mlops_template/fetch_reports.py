"""The drift monitor's reports of its recent runs, from GitHub Actions artifacts (standard
library only), so the history page charts live performance and drift over time.

`monitor.yaml` uploads `reports/monitor/` (drift.json, performance.json, their markdown)
as the artifact `drift-report` of every run, kept 30 days. This lists the workflow's
successful runs on the default branch, newest first, through GitHub's REST API, and
unpacks each run's artifact into OUT/run-<id>/:

    GET /repos/{o}/{r}                                  default_branch (unless --branch)
    GET /repos/{o}/{r}/actions/workflows/{file}/runs    ?branch=&status=success, paged
    GET /repos/{o}/{r}/actions/runs/{id}/artifacts      ?name=ARTIFACT, paged
    GET {archive_download_url}                          302 -> a signed URL of the zip

Only runs of the schedule or a dispatch, from this repository itself, count: a pull
request from a fork whose branch is also called `main` runs with `head_branch` "main"
too. The signed URL is fetched without the token (it is a credential on its own, and the
token goes only to the API). An expired artifact (`expired`, or 410/404 on download)
and a run without one are skipped and listed; no run at all is not an error (the page
says there is no live data yet). An archive is untrusted data: an entry that is absolute,
climbs out with `..`, is a link, or makes it too large refuses that artifact (nothing of
it is written). OUT/runs.json records every run looked at. OUT is replaced only when the
fetch succeeds: a refused call (401, 403: the token needs `actions: read`, 404) is an
error naming the call and leaves a previous OUT as it was.

`python -m mlops_template site fetch-reports --repo OWNER/NAME --out DIR` (the token from
GITHUB_TOKEN or GH_TOKEN, the API from GITHUB_API_URL); `python -m
mlops_template.fetch_reports` the same with nothing installed.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, urlsplit

from mlops_template import log
from mlops_template.sticky_comment import DEFAULT_API, REPO, TIMEOUT_S, GitHub, GitHubError

logger = log.get_logger("fetch_reports")

WORKFLOW = "monitor.yaml"
ARTIFACT = "drift-report"
LIMIT = 30  # a daily schedule for the artifacts' 30 days of retention
EVENTS = ("schedule", "workflow_dispatch")  # the monitor's own triggers: default-branch code
MANIFEST = "runs.json"
MAX_ZIP_BYTES = 50 * 2**20  # one run's reports are kilobytes (plots: a few hundred KB)
MAX_UNPACKED_BYTES = 200 * 2**20
MAX_ENTRIES = 1000
WORKFLOW_FILE = re.compile(r"^(?:\d+|[A-Za-z0-9_.-]+\.ya?ml)$")


class ArchiveRefused(ValueError):
    """An artifact whose archive is not unpacked (an unsafe entry, too large, not a zip)."""


class ArtifactGone(LookupError):
    """The artifact expired or was deleted between listing and download."""


@dataclass
class FetchedRun:
    """One monitor run looked at: where its reports went, or why there are none."""

    run_id: int
    created_at: str
    html_url: str
    artifact_id: int | None = None
    folder: str | None = None  # under OUT, when unpacked
    files: list[str] = field(default_factory=list)
    skipped: str | None = None


def token_from_env(env: Mapping[str, str]) -> str:
    return env.get("GITHUB_TOKEN") or env.get("GH_TOKEN") or ""


def _explain(error: GitHubError, what: str) -> GitHubError:
    hint = {
        401: "the token is missing, expired or wrong (GITHUB_TOKEN / GH_TOKEN)",
        403: "the token may not read Actions: the job needs `permissions: actions: read`",
        404: "no such repository or workflow, or the token cannot see it",
    }.get(error.status or 0)
    text = f"{what}: {error}" + (f" ({hint})" if hint else "")
    return GitHubError(text, error.status)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx reaches the caller as an HTTPError, Location and all


def _read_capped(response: Any, url: str) -> bytes:
    data = response.read(MAX_ZIP_BYTES + 1)
    if len(data) > MAX_ZIP_BYTES:
        raise ArchiveRefused(f"{url}: the archive is larger than {MAX_ZIP_BYTES} bytes")
    return data


def download(api: GitHub, url: str) -> bytes:
    """The zip behind an artifact's archive_download_url: the API answers 302 with a
    short-lived signed URL, fetched without the token."""
    root = api.api_url.rstrip("/") + "/"
    if not url.startswith(root):
        raise GitHubError(f"GET {url}: the artifact's URL is not under {api.api_url}")
    request = urllib.request.Request(url, method="GET")
    request.add_header("Authorization", f"Bearer {api.token}")
    request.add_header("Accept", "application/vnd.github+json")
    request.add_header("X-GitHub-Api-Version", "2022-11-28")
    request.add_header("User-Agent", "mlops-template-fetch-reports")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=TIMEOUT_S) as response:
            return _read_capped(response, url)  # a server that serves the zip itself
    except urllib.error.HTTPError as error:
        if error.code in (301, 302, 303, 307, 308) and error.headers.get("Location"):
            location = error.headers["Location"]
        elif error.code in (404, 410):
            raise ArtifactGone(f"GET {url}: HTTP {error.code}") from error
        else:
            detail = error.read().decode("utf-8", "replace")[:300]
            raise GitHubError(f"GET {url}: HTTP {error.code} {detail}", error.code) from error
    except (urllib.error.URLError, TimeoutError) as error:
        raise GitHubError(f"GET {url}: {error}") from error
    scheme = urlsplit(location).scheme
    if scheme != "https" and not (scheme == "http" and root.startswith("http://")):
        raise GitHubError(f"GET {url}: redirected to {location!r}, not an https URL")
    signed = urllib.request.Request(location, method="GET")  # no Authorization header
    signed.add_header("User-Agent", "mlops-template-fetch-reports")
    try:
        with urllib.request.urlopen(signed, timeout=TIMEOUT_S) as response:
            return _read_capped(response, location.split("?")[0])
    except urllib.error.HTTPError as error:
        if error.code in (404, 410):
            raise ArtifactGone(f"GET {location.split('?')[0]}: HTTP {error.code}") from error
        raise GitHubError(
            f"GET {location.split('?')[0]} (the archive): HTTP {error.code}", error.code
        ) from error
    except (urllib.error.URLError, TimeoutError) as error:
        raise GitHubError(f"GET {location.split('?')[0]} (the archive): {error}") from error


def _entry_path(info: zipfile.ZipInfo) -> PurePosixPath:
    name = info.filename
    path = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or path.is_absolute()
        or re.match(r"^[A-Za-z]:", name)
        or any(part in ("..", "") for part in name.rstrip("/").split("/"))
    ):
        raise ArchiveRefused(f"entry {name!r}: a path outside the artifact's folder")
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no type recorded (a plain file)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise ArchiveRefused(f"entry {name!r}: not a regular file (a link or a device)")
    return path


def unpack(data: bytes, dest: Path) -> list[str]:
    """The archive's files under DEST (created); every entry is checked before any is
    written, so a refused archive leaves nothing behind."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as error:
        raise ArchiveRefused(f"not a zip archive: {error}") from error
    with archive:
        entries = archive.infolist()
        if len(entries) > MAX_ENTRIES:
            raise ArchiveRefused(f"{len(entries)} entries (at most {MAX_ENTRIES})")
        paths = [_entry_path(info) for info in entries]  # all checked before any write
        files = [(i, p) for i, p in zip(entries, paths, strict=True) if not i.is_dir()]
        total = sum(info.file_size for info, _ in files)
        if total > MAX_UNPACKED_BYTES:
            raise ArchiveRefused(f"{total} bytes unpacked (at most {MAX_UNPACKED_BYTES})")
        names = [p.as_posix() for _, p in files]
        if len(set(names)) != len(names):
            raise ArchiveRefused("the same entry twice")
        dest.mkdir(parents=True, exist_ok=True)
        written = 0
        for info, path in files:
            target = dest.joinpath(*path.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "xb") as sink:
                while chunk := source.read(1 << 16):
                    written += len(chunk)
                    if written > MAX_UNPACKED_BYTES:  # a size field that lied
                        raise ArchiveRefused(f"more than {MAX_UNPACKED_BYTES} bytes unpacked")
                    sink.write(chunk)
    return sorted(names)


def eligible(run: dict[str, Any], repo: str, branch: str) -> bool:
    """A successful run of the monitor's own triggers, on BRANCH of this repository."""
    head = run.get("head_repository") or {}
    return (
        run.get("conclusion") == "success"
        and run.get("head_branch") == branch
        and run.get("event") in EVENTS
        and str(head.get("full_name", "")).lower() == repo.lower()
    )


def _newest_artifact(api: GitHub, repo: str, run_id: int, name: str) -> dict[str, Any] | None:
    path = f"repos/{repo}/actions/runs/{run_id}/artifacts?name={quote(name, safe='')}"
    try:
        found = [a for a in api.items(path, "artifacts") if a.get("name") == name]
    except GitHubError as error:
        raise _explain(error, f"the artifacts of run {run_id}") from error
    return max(found, key=lambda a: (str(a.get("created_at", "")), a.get("id", 0)), default=None)


def fetch_reports(
    api: GitHub,
    repo: str,
    out: Path,
    workflow: str = WORKFLOW,
    artifact: str = ARTIFACT,
    limit: int = LIMIT,
    branch: str | None = None,
) -> list[FetchedRun]:
    """The reports of the LIMIT newest eligible runs into OUT/run-<id>/ (OUT replaced)."""
    if not REPO.match(repo):
        raise ValueError(f"--repo must be OWNER/NAME, got {repo!r}")
    if not WORKFLOW_FILE.match(workflow):
        raise ValueError(
            f"--workflow must be a workflow file name (monitor.yaml), got {workflow!r}"
        )
    if limit < 1:
        raise ValueError(f"--limit must be at least 1, got {limit}")
    if branch is None:
        try:
            info, _ = api.call("GET", f"repos/{repo}")
        except GitHubError as error:
            raise _explain(error, f"the repository {repo} (its default branch)") from error
        branch = str((info or {}).get("default_branch") or "")
        if not branch:
            raise GitHubError(f"GET repos/{repo}: no default_branch in the answer")
    runs: list[dict[str, Any]] = []
    listing = (
        f"repos/{repo}/actions/workflows/{workflow}/runs?branch={quote(branch, safe='')}"
        "&status=success&exclude_pull_requests=true"
    )
    try:
        for run in api.items(listing, "workflow_runs"):
            if eligible(run, repo, branch):
                runs.append(run)
                if len(runs) == limit:
                    break
    except GitHubError as error:
        raise _explain(error, f"the runs of the workflow {workflow}") from error
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    fetched: list[FetchedRun] = []
    try:
        for run in runs:
            item = FetchedRun(
                int(run["id"]), str(run.get("created_at", "")), str(run.get("html_url", ""))
            )
            fetched.append(item)
            found = _newest_artifact(api, repo, item.run_id, artifact)
            if found is None:
                item.skipped = f"no artifact named {artifact!r}"
            elif found.get("expired"):
                item.artifact_id, item.skipped = found.get("id"), "the artifact has expired"
            else:
                item.artifact_id = found.get("id")
                try:
                    data = download(api, str(found.get("archive_download_url", "")))
                    folder = f"run-{item.run_id}"
                    try:
                        item.files = unpack(data, staging / folder)
                    except ArchiveRefused:
                        shutil.rmtree(staging / folder, ignore_errors=True)
                        raise
                    item.folder = folder
                except ArtifactGone as error:
                    item.skipped = f"the artifact is gone ({error})"
                except ArchiveRefused as error:
                    item.skipped = f"refused: {error}"
                    logger.error(
                        "run %d, artifact %s: refused: %s", item.run_id, item.artifact_id, error
                    )
                except GitHubError as error:
                    raise _explain(
                        error, f"the artifact {item.artifact_id} of run {item.run_id}"
                    ) from error
            if item.skipped and not item.skipped.startswith("refused"):
                logger.warning("run %d (%s): %s", item.run_id, item.created_at, item.skipped)
        manifest = {
            "repository": repo,
            "workflow": workflow,
            "artifact": artifact,
            "branch": branch,
            "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "runs": [asdict(item) for item in fetched],
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
        old = out.with_name(f".{out.name}.old")
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
            out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return fetched


def summary(fetched: list[FetchedRun]) -> str:
    used = [r for r in fetched if r.folder]
    return f"{len(used)} run(s) with reports of {len(fetched)} looked at" + (
        f", {len(fetched) - len(used)} skipped" if len(used) < len(fetched) else ""
    )


def run_fetch(
    repo: str,
    out: Path,
    workflow: str,
    artifact: str,
    limit: int,
    branch: str | None,
    env: Mapping[str, str] = os.environ,
) -> int:
    """The command: 0 when fetched (even nothing), 2 on bad input or a refused call."""
    token = token_from_env(env)
    if not token:
        logger.error(
            "fetch-reports: neither GITHUB_TOKEN nor GH_TOKEN is set (a token with actions: read)"
        )
        return 2
    api = GitHub(env.get("GITHUB_API_URL") or DEFAULT_API, token)
    try:
        fetched = fetch_reports(api, repo, out, workflow, artifact, limit, branch)
    except (GitHubError, ValueError, OSError) as error:
        logger.error("fetch-reports: %s", error)
        return 2
    if not fetched:
        logger.info("fetch-reports: no successful run of %s yet: no live data -> %s", workflow, out)
    else:
        logger.info("fetch-reports: %s -> %s", summary(fetched), out)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_template.fetch_reports")
    parser.add_argument("--repo", required=True, help="OWNER/NAME")
    parser.add_argument("--out", required=True, type=Path, help="directory of the reports")
    parser.add_argument("--workflow", default=WORKFLOW, help="the monitor's workflow file")
    parser.add_argument("--artifact", default=ARTIFACT, help="its reports' artifact name")
    parser.add_argument("--limit", type=int, default=LIMIT, help="newest runs looked at")
    parser.add_argument("--branch", default=None, help="default: the repository's default branch")
    args = parser.parse_args(argv)
    return run_fetch(args.repo, args.out, args.workflow, args.artifact, args.limit, args.branch)


if __name__ == "__main__":
    log.configure(False)
    sys.exit(main(sys.argv[1:]))
