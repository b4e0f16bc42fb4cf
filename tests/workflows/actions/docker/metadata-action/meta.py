#!/usr/bin/env python3
"""Stand-in for docker/metadata-action under act: tags from `type=raw` (value, enable) and
`type=sha` rules for each image (lowercased, as the real action), OCI labels plus the
`labels` input; outputs version, tags, labels, json ({"tags": [...], "labels": {...}}).
Inputs in INPUT_*."""

from __future__ import annotations

import json
import os
import sys
import time


def fail(message: str) -> None:
    print(f"::error::metadata-action stand-in: {message}")
    sys.exit(1)


def items(value: str) -> list[str]:
    """A list input: one item per line, or comma-separated."""
    out = []
    for line in value.splitlines():
        out += [part.strip() for part in line.split(",")]
    return [item for item in out if item and not item.startswith("#")]


def output(**values: str) -> None:
    with open(os.environ["GITHUB_OUTPUT"], "a") as out:
        for key, value in values.items():
            if "\n" in value:
                out.write(f"{key}<<__EOF__\n{value}\n__EOF__\n")
            else:
                out.write(f"{key}={value}\n")


def _rule(spec: str) -> dict[str, str]:
    fields = {}
    for part in spec.split(","):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip()
    return fields


def metadata() -> None:
    """type=raw (value, enable) and type=sha tags; OCI labels plus the `labels` input."""
    images = [i.lower() for i in items(os.environ.get("INPUT_IMAGES", ""))]
    if not images:
        fail("images input required")
    versions = []
    for line in os.environ.get("INPUT_TAGS", "").splitlines():
        if not line.strip():
            continue
        rule = _rule(line.strip())
        if rule.get("enable", "true") == "false":
            continue
        if rule.get("type") == "raw":
            versions.append(rule["value"])
        elif rule.get("type") == "sha":
            versions.append(f"sha-{os.environ['GITHUB_SHA'][:7]}")
        else:
            fail(f"tag rule not supported by the stand-in: {line.strip()}")
    tags = [f"{image}:{version}" for image in images for version in versions]
    repo = os.environ.get("GITHUB_REPOSITORY", "")
    labels = {
        "org.opencontainers.image.created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "org.opencontainers.image.revision": os.environ.get("GITHUB_SHA", ""),
        "org.opencontainers.image.source": f"https://github.com/{repo}",
        "org.opencontainers.image.title": repo.split("/")[-1],
        "org.opencontainers.image.url": f"https://github.com/{repo}",
        "org.opencontainers.image.version": versions[0] if versions else "",
    }
    for line in os.environ.get("INPUT_LABELS", "").splitlines():
        if "=" in line:
            key, _, value = line.strip().partition("=")
            labels[key] = value
    label_lines = [f"{k}={v}" for k, v in sorted(labels.items())]
    output(
        version=versions[0] if versions else "",
        tags="\n".join(tags),
        labels="\n".join(label_lines),
        json=json.dumps({"tags": tags, "labels": labels}),
    )
    print("tags:\n  " + "\n  ".join(tags))


if __name__ == "__main__":
    metadata()
