#!/usr/bin/env python3
"""Stand-in for softprops/action-gh-release under act (host mode, no GitHub API).

A release is $ACT_STANDIN_STORE/releases/<quoted tag>/: release.json (tag, name, body,
draft, prerelease, make_latest, runs that touched it) and assets/<file name>. As the real
action: an existing release of the tag is updated; an asset of the same name is replaced
only with overwrite_files; fail_on_unmatched_files fails on a glob that matches nothing;
the tag comes from tag_name or a refs/tags/ GITHUB_REF; a token is required.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
from pathlib import Path
from urllib.parse import quote


def fail(message: str) -> None:
    print(f"::error::action-gh-release stand-in: {message}")
    sys.exit(1)


def patterns(value: str) -> list[str]:
    out = []
    for line in value.splitlines():
        out += [part.strip() for part in line.split(",")]
    return [p for p in out if p]


def main() -> None:
    env = os.environ
    store = Path(env.get("ACT_STANDIN_STORE") or fail("ACT_STANDIN_STORE is not set")) / "releases"
    if not env.get("INPUT_TOKEN"):
        fail("a token is required")
    tag = env.get("INPUT_TAG_NAME") or ""
    if not tag and env.get("GITHUB_REF", "").startswith("refs/tags/"):
        tag = env["GITHUB_REF"].removeprefix("refs/tags/")
    if not tag:
        fail("GitHub Releases requires a tag")
    base = Path(env["GITHUB_WORKSPACE"]) / (env.get("INPUT_WORKING_DIRECTORY") or ".")
    files: list[Path] = []
    for pattern in patterns(env.get("INPUT_FILES", "")):
        hits = [Path(h) for h in sorted(glob.glob(str(base / pattern))) if Path(h).is_file()]
        if not hits:
            message = f"Pattern '{pattern}' does not match any files."
            if env.get("INPUT_FAIL_ON_UNMATCHED_FILES") == "true":
                fail(message)
            print(f"::warning::{message}")
        files += hits
    body = env.get("INPUT_BODY", "")
    if env.get("INPUT_BODY_PATH"):
        body_path = base / env["INPUT_BODY_PATH"]
        if not body_path.is_file():
            fail(f"body_path {env['INPUT_BODY_PATH']} not found")
        body = body_path.read_text()
    target = store / quote(tag, safe="")
    record_path = target / "release.json"
    existing = json.loads(record_path.read_text()) if record_path.exists() else None
    record = {
        "tag_name": tag,
        "name": env.get("INPUT_NAME") or tag,
        "body": body,
        "draft": env.get("INPUT_DRAFT") == "true",
        "prerelease": env.get("INPUT_PRERELEASE") == "true",
        "make_latest": env.get("INPUT_MAKE_LATEST") or None,
        "target_commitish": env.get("INPUT_TARGET_COMMITISH") or None,
        "runs": [*(existing or {}).get("runs", []), env.get("GITHUB_RUN_ID")],
    }
    assets = target / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for path in files:
        dest = assets / path.name
        if dest.exists() and env.get("INPUT_OVERWRITE_FILES", "true") != "true":
            print(f"::warning::asset {path.name} exists, not overwritten")
            continue
        shutil.copy2(path, dest)
    record["assets"] = sorted(p.name for p in assets.iterdir())
    record_path.write_text(json.dumps(record, indent=1))
    repo = env.get("GITHUB_REPOSITORY", "")
    url = f"https://github.com/{repo}/releases/tag/{quote(tag, safe='')}"
    print(f"{'Updated' if existing else 'Created'} release {tag} with {len(files)} asset(s): {url}")
    with open(env["GITHUB_OUTPUT"], "a") as out:
        out.write(f"url={url}\n")
        out.write(f"id={abs(hash(tag)) % 10**9}\n")
        out.write(f"upload_url=https://uploads.github.com/repos/{repo}/releases/0/assets\n")
        out.write(f"assets={json.dumps(record['assets'])}\n")


if __name__ == "__main__":
    main()
