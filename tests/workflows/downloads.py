"""A loopback server standing in for the release hosts the workflows download from.

- `/iterative/cml/releases/download/v0.20.5/cml-linux-x64`: the `cml` recorder
  (tests/workflows/cml/cml), as github.com would serve CML's release binary. What
  .github/actions/setup-cml fetches, checks and installs.
- `/terraform/1.15.8/terraform_1.15.8_linux_amd64.zip`: a zip holding the fake
  `terraform` (tests/workflows/cml/terraform), as releases.hashicorp.com would.

Both paths are the real URLs' paths under the host, so the workflows keep their real
URL scheme and only swap the base (SETUP_CML_TEST_BASE_URL / TERRAFORM_TEST_BASE_URL,
honoured only for http://127.0.0.1). The sha256 the workflow must then expect is the
one of these files, computed here, passed as SETUP_CML_TEST_SHA256 /
TERRAFORM_TEST_SHA256. Every request is recorded with its Authorization header.
"""

from __future__ import annotations

import hashlib
import io
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
            "SETUP_CML_TEST_BASE_URL": self.url(CML_BASE),
            "SETUP_CML_TEST_SHA256": self.sha256(self.cml_path),
            "TERRAFORM_TEST_BASE_URL": self.url(TERRAFORM_BASE),
            "TERRAFORM_TEST_SHA256": self.sha256(self.terraform_path),
        }

    def requests_for(self, path: str) -> list[dict[str, str]]:
        return [r for r in self.requests if r["path"] == path]


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
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_port
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state
