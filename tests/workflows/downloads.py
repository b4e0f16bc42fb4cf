"""A loopback server standing in for the release hosts the workflows download from.

- `/iterative/cml/releases/download/v0.20.5/cml-linux-x64`: the `cml` recorder
  (tests/workflows/cml/cml), as github.com would serve CML's release binary. What
  .github/actions/setup-cml fetches, checks and installs.
- `/terraform/1.15.8/terraform_1.15.8_linux_amd64.zip`: a zip holding the fake
  `terraform` (tests/workflows/cml/terraform), as releases.hashicorp.com would.

- `/repos/iterative/cml/releases/tags/v0.20.5`: that release as api.github.com's "Get a
  release by tag name" answers it (@octokit/openapi `release` / `release-asset`): the
  asset's `digest` is "sha256:<hex>" of the served recorder, or `cml_digest` when a
  test sets it (None for an asset GitHub never hashed). A token other than the run's
  gets 401 "Bad credentials"; no token is allowed (public repository, anonymous quota).

The paths are the real URLs' paths under the host, so the workflows keep their real
URL scheme and only swap the base (SETUP_CML_TEST_API_URL and SETUP_CML_TEST_BASE_URL /
TERRAFORM_TEST_BASE_URL, honoured only for http://127.0.0.1). Terraform's sha256 is
pinned in the workflow, so the one of the served zip is passed as TERRAFORM_TEST_SHA256;
CML's comes from the release's digest, as on GitHub. Every request is recorded with its
Authorization header.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zipfile
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORDER = HERE / "cml" / "cml"
FAKE_TERRAFORM = HERE / "cml" / "terraform"
CML_VERSION = "v0.20.5"
TERRAFORM_VERSION = "1.15.8"
CML_BASE = "/iterative/cml/releases/download"
CML_RELEASE = f"/repos/iterative/cml/releases/tags/{CML_VERSION}"
RUN_TOKEN = "test-token"  # the harness's github.token
UNSET = object()
TERRAFORM_BASE = "/terraform"


def terraform_zip() -> bytes:
    """What HashiCorp's zip holds for linux_amd64: one executable named terraform."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        info = zipfile.ZipInfo("terraform", date_time=(2026, 1, 1, 0, 0, 0))
        info.external_attr = 0o100755 << 16
        archive.writestr(info, FAKE_TERRAFORM.read_bytes())
    return out.getvalue()


@dataclass
class Downloads:
    port: int = 0
    files: dict[str, bytes] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    # What the release API gives as the asset's digest; UNSET: the served file's sha256.
    cml_digest: object = UNSET

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def cml_path(self) -> str:
        return f"{CML_BASE}/{CML_VERSION}/cml-linux-x64"

    @property
    def terraform_path(self) -> str:
        return f"{TERRAFORM_BASE}/{TERRAFORM_VERSION}/terraform_{TERRAFORM_VERSION}_linux_amd64.zip"

    def sha256(self, path: str) -> str:
        return hashlib.sha256(self.files[path]).hexdigest()

    def env(self) -> dict[str, str]:
        """What a workflow run needs to download from here instead of the real hosts."""
        return {
            "SETUP_CML_TEST_API_URL": self.url(),
            "SETUP_CML_TEST_BASE_URL": self.url(CML_BASE),
            "TERRAFORM_TEST_BASE_URL": self.url(TERRAFORM_BASE),
            "TERRAFORM_TEST_SHA256": self.sha256(self.terraform_path),
        }

    def requests_for(self, path: str) -> list[dict[str, str]]:
        return [r for r in self.requests if r["path"] == path]

    def release(self) -> dict[str, object]:
        digest = self.cml_digest
        if digest is UNSET:
            digest = f"sha256:{self.sha256(self.cml_path)}"
        name = "cml-linux-x64"
        return {
            "tag_name": CML_VERSION,
            "draft": False,
            "prerelease": False,
            "assets": [
                {
                    "name": name,
                    "state": "uploaded",
                    "content_type": "application/octet-stream",
                    "size": len(self.files[self.cml_path]),
                    "digest": digest,
                    "url": f"https://api.github.com/repos/iterative/cml/releases/assets/{CML_VERSION}",
                    "browser_download_url": f"https://github.com{CML_BASE}/{CML_VERSION}/{name}",
                }
            ],
        }


@cache
def downloads() -> Downloads:
    """The process-wide server (started once, a daemon thread)."""
    state = Downloads()
    state.files[state.cml_path] = RECORDER.read_bytes()
    state.files[state.terraform_path] = terraform_zip()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # http.server's method name
            state.requests.append(
                {"path": self.path, "authorization": self.headers.get("Authorization", "")}
            )
            content_type = "application/octet-stream"
            body = state.files.get(self.path)
            if self.path == CML_RELEASE:
                auth = self.headers.get("Authorization", "")
                if auth and auth != f"Bearer {RUN_TOKEN}":
                    message = {"message": "Bad credentials", "status": "401"}
                    self.send_response(401)
                    body = json.dumps(message).encode()
                else:
                    self.send_response(200)
                    body = json.dumps(state.release()).encode()
                content_type = "application/json; charset=utf-8"
            elif body is None:
                self.send_error(404)
                return
            else:
                self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state
