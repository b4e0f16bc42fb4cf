#!/usr/bin/env python3
"""Stand-in for actions/github-script under act: record the call, run nothing.

Appends {run, script, env} to $ACT_STANDIN_STORE/github-script/calls.jsonl, where env
holds the variables the script reads through `process.env.NAME`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path


def main() -> None:
    store = os.environ.get("ACT_STANDIN_STORE")
    if not store:
        print("::error::github-script stand-in: ACT_STANDIN_STORE is not set")
        sys.exit(1)
    script = os.environ.get("INPUT_SCRIPT", "")
    names = sorted(set(re.findall(r"process\.env\.([A-Za-z_][A-Za-z0-9_]*)", script)))
    record = {
        "run": os.environ.get("GITHUB_RUN_ID"),
        "job": os.environ.get("GITHUB_JOB"),
        "script": script,
        "env": {name: os.environ.get(name) for name in names},
    }
    target = Path(store) / "github-script" / "calls.jsonl"
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as out:
        out.write(json.dumps(record) + "\n")
    repo = os.environ.get("GITHUB_REPOSITORY", "owner/repo")
    with open(os.environ["GITHUB_OUTPUT"], "a") as out:
        out.write(f"result=\npage_url=http://pages.invalid/{repo}/\n")
    print(f"github-script stand-in: recorded a call of job {record['job']}")


if __name__ == "__main__":
    main()
