"""A fake GitHub REST API on 127.0.0.1: the issue-comment and Actions-artifact endpoints,
answering like GitHub.

What it models (GitHub REST docs / @octokit/openapi, `issues/list-comments`,
`issues/create-comment`, `issues/update-comment`):
- authentication: `Authorization: Bearer <token>` or `token <token>`; none -> 401
  "Requires authentication", another token -> 401 "Bad credentials";
- GET /repos/{o}/{r}/issues/{n}/comments: oldest first, `per_page` default 30, at most
  100, `page` from 1; a `Link` header with rel="next"/"last" (and "prev"/"first") when
  there is more than one page; 404 for an issue that does not exist;
- POST /repos/{o}/{r}/issues/{n}/comments {"body"} -> 201 and the new comment;
- PATCH /repos/{o}/{r}/issues/comments/{id} {"body"} -> 200, 404 for an unknown id;
  a missing or non-string body -> 422.

Actions (`repos/get`, `actions/list-workflow-runs`, `actions/list-workflow-run-artifacts`,
`actions/download-artifact`):
- GET /repos/{o}/{r} -> {"full_name", "default_branch", ...}; 404 for another repository;
- GET /repos/{o}/{r}/actions/workflows/{file}/runs: {"total_count", "workflow_runs"},
  newest first, filtered by `branch` (head_branch), `event` and `status` (a status or a
  conclusion), paged like the comments; 404 for a workflow file that does not exist. The
  runs are the `workflow_run` object of @octokit/webhooks-examples (the REST shape),
  retargeted;
- GET /repos/{o}/{r}/actions/runs/{id}/artifacts: {"total_count", "artifacts"} (the
  OpenAPI `artifact` fields), `name` filter, paged; 404 for an unknown run;
- GET /repos/{o}/{r}/actions/artifacts/{id}/zip: 302 to a signed URL on this server
  (`/_blob/{id}?sig=...`, valid once, no token needed: the token is recorded if one is
  sent); 410 "Artifact has expired" once expired, 404 for an unknown id;
- a token without `actions: read` (`actions_read=False`): 403 "Resource not accessible by
  integration" on the /actions/ endpoints.
Every request is recorded (method, path, query, authorization).
"""

from __future__ import annotations

import copy
import io
import json
import re
import secrets
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

LIST = re.compile(r"^/repos/([\w.-]+/[\w.-]+)/issues/(\d+)/comments$")
ONE = re.compile(r"^/repos/([\w.-]+/[\w.-]+)/issues/comments/(\d+)$")
REPOSITORY = re.compile(r"^/repos/([\w.-]+/[\w.-]+)$")
RUNS = re.compile(r"^/repos/([\w.-]+/[\w.-]+)/actions/workflows/([\w.-]+)/runs$")
ARTIFACTS = re.compile(r"^/repos/([\w.-]+/[\w.-]+)/actions/runs/(\d+)/artifacts$")
DOWNLOAD = re.compile(r"^/repos/([\w.-]+/[\w.-]+)/actions/artifacts/(\d+)/zip$")
BLOB = re.compile(r"^/_blob/(\d+)$")


def zip_of(files: dict[str, bytes | str]) -> bytes:
    """A zip archive as actions/upload-artifact makes it: the files by relative path."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@dataclass
class FakeGitHub:
    token: str
    issues: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    default_branches: dict[str, str] = field(default_factory=dict)  # repo -> branch
    workflows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)  # run -> list
    blobs: dict[int, bytes] = field(default_factory=dict)  # artifact id -> zip
    signed: dict[str, int] = field(default_factory=dict)  # signature -> artifact id
    blob_requests: list[dict[str, str]] = field(default_factory=list)
    actions_read: bool = True  # the token's `actions: read` permission
    _ids: int = 1_000_000
    _server: ThreadingHTTPServer | None = None
    # The started fakes, for the act harness: a repeated act run restores their state.
    live: ClassVar[list[FakeGitHub]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open_issue(self, repo: str, number: int) -> None:
        self.issues.setdefault((repo, number), [])

    def add_comment(self, repo: str, number: int, body: str, login: str = "someone") -> int:
        self._ids += 1
        comment = {
            "id": self._ids,
            "node_id": f"IC_{self._ids}",
            "body": body,
            "user": {"login": login, "type": "User"},
            "html_url": f"https://github.com/{repo}/pull/{number}#issuecomment-{self._ids}",
            "issue_url": f"{self.url}/repos/{repo}/issues/{number}",
        }
        self.issues[(repo, number)].append(comment)
        return self._ids

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        return self.issues[(repo, number)]

    def add_repository(self, repo: str, default_branch: str = "main") -> None:
        self.default_branches[repo] = default_branch

    def add_workflow(self, repo: str, workflow: str) -> None:
        self.workflows.setdefault((repo, workflow), [])

    def add_run(
        self,
        repo: str,
        workflow: str,
        created_at: str,
        artifacts: dict[str, bytes] | None = None,
        *,
        event: str = "schedule",
        branch: str = "main",
        conclusion: str | None = "success",
        head_repository: str | None = None,
        expired: tuple[str, ...] = (),
    ) -> int:
        """A completed run of WORKFLOW and its artifacts {name: zip bytes}; `expired`
        names those past their retention. The run's id."""
        from tests.workflows.act import retarget_repo, webhook_example

        self._ids += 1
        run_id = self._ids
        example = webhook_example("workflow_run", "completed", index=1)["workflow_run"]
        api = f"https://api.github.com/repos/{repo}/actions/runs/{run_id}"
        example.update(
            id=run_id,
            name=workflow,
            path=f".github/workflows/{workflow}",
            event=event,
            head_branch=branch,
            status="completed",
            conclusion=conclusion,
            created_at=created_at,
            updated_at=created_at,
            run_started_at=created_at,
            url=api,
            html_url=f"https://github.com/{repo}/actions/runs/{run_id}",
            artifacts_url=f"{api}/artifacts",
            repository=retarget_repo(example["repository"], repo),
            head_repository=retarget_repo(
                example["head_repository"],
                head_repository or repo,
                fork=(head_repository or repo) != repo,
            ),
            pull_requests=[],
        )
        self.workflows.setdefault((repo, workflow), []).append(example)
        self.artifacts[run_id] = []
        for name, data in (artifacts or {}).items():
            self._ids += 1
            self.blobs[self._ids] = data
            self.artifacts[run_id].append(
                {
                    "id": self._ids,
                    "node_id": f"MDg6QXJ0aWZhY3Q{self._ids}",
                    "name": name,
                    "size_in_bytes": len(data),
                    "url": f"{self.url}/repos/{repo}/actions/artifacts/{self._ids}",
                    "archive_download_url": (
                        f"{self.url}/repos/{repo}/actions/artifacts/{self._ids}/zip"
                    ),
                    "expired": name in expired,
                    "created_at": created_at,
                    "expires_at": created_at,
                    "updated_at": created_at,
                    "digest": "sha256:" + "0" * 64,
                    "workflow_run": {
                        "id": run_id,
                        "repository_id": example["repository"]["id"],
                        "head_repository_id": example["head_repository"]["id"],
                        "head_branch": branch,
                        "head_sha": example["head_sha"],
                    },
                }
            )
        return run_id

    def writes(self) -> list[dict[str, str]]:
        return [r for r in self.requests if r["method"] in {"POST", "PATCH"}]

    def start(self) -> FakeGitHub:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def _handle(self, method: str) -> None:
                split = urlsplit(self.path)
                auth = self.headers.get("Authorization", "")
                if found := BLOB.match(split.path):  # not the API: recorded on its own
                    return self._blob(int(found.group(1)), parse_qs(split.query), auth)
                fake.requests.append(
                    {"method": method, "path": split.path, "query": split.query, "auth": auth}
                )
                scheme, _, given = auth.partition(" ")
                if not auth:
                    return self._send(401, {"message": "Requires authentication"})
                if scheme.lower() not in {"bearer", "token"} or given != fake.token:
                    return self._send(401, {"message": "Bad credentials"})
                body: Any = None
                if method in {"POST", "PATCH"}:
                    length = int(self.headers.get("Content-Length") or 0)
                    try:
                        body = json.loads(self.rfile.read(length) or b"null")
                    except ValueError:
                        return self._send(400, {"message": "Problems parsing JSON"})
                    if not isinstance(body, dict) or not isinstance(body.get("body"), str):
                        return self._send(422, {"message": "Invalid request: body"})
                if "/actions/" in split.path and not fake.actions_read:
                    return self._send(403, {"message": "Resource not accessible by integration"})
                if method == "GET" and (answered := self._actions(split)):
                    return answered
                if found := LIST.match(split.path):
                    key = (found.group(1), int(found.group(2)))
                    if key not in fake.issues:
                        return self._send(404, {"message": "Not Found"})
                    if method == "GET":
                        return self._list(split, fake.issues[key])
                    if method == "POST":
                        new = fake.add_comment(*key, body["body"], login="github-actions[bot]")
                        return self._send(201, next(c for c in fake.issues[key] if c["id"] == new))
                if (found := ONE.match(split.path)) and method == "PATCH":
                    for comments in fake.issues.values():
                        for comment in comments:
                            if comment["id"] == int(found.group(2)):
                                comment["body"] = body["body"]
                                return self._send(200, comment)
                return self._send(404, {"message": "Not Found"})

            def _actions(self, split: Any) -> bool:
                """Answer an Actions or repository GET; False when the path is another."""
                query = parse_qs(split.query)
                if found := REPOSITORY.match(split.path):
                    repo = found.group(1)
                    if repo not in fake.default_branches:
                        self._send(404, {"message": "Not Found"})
                    else:
                        branch = fake.default_branches[repo]
                        self._send(200, {"full_name": repo, "default_branch": branch})
                    return True
                if found := RUNS.match(split.path):
                    key = (found.group(1), found.group(2))
                    if key not in fake.workflows:
                        self._send(404, {"message": "Not Found"})
                        return True
                    runs = sorted(fake.workflows[key], key=lambda r: r["created_at"], reverse=True)
                    for name, field_ in (("branch", "head_branch"), ("event", "event")):
                        if name in query:
                            runs = [r for r in runs if r[field_] == query[name][0]]
                    if "status" in query:
                        wanted = query["status"][0]
                        runs = [r for r in runs if wanted in (r["status"], r["conclusion"])]
                    self._list(split, runs, "workflow_runs")
                    return True
                if found := ARTIFACTS.match(split.path):
                    run_id = int(found.group(2))
                    if run_id not in fake.artifacts:
                        self._send(404, {"message": "Not Found"})
                        return True
                    listed = fake.artifacts[run_id]
                    if "name" in query:
                        listed = [a for a in listed if a["name"] == query["name"][0]]
                    self._list(split, listed, "artifacts")
                    return True
                if found := DOWNLOAD.match(split.path):
                    artifact = next(
                        (a for arts in fake.artifacts.values() for a in arts
                         if a["id"] == int(found.group(2))),
                        None,
                    )  # fmt: skip
                    if artifact is None:
                        self._send(404, {"message": "Not Found"})
                    elif artifact["expired"]:
                        self._send(410, {"message": "Artifact has expired"})
                    else:
                        signature = secrets.token_hex(16)
                        fake.signed[signature] = artifact["id"]
                        location = f"{fake.url}/_blob/{artifact['id']}?sig={signature}"
                        self.send_response(302)
                        self.send_header("Location", location)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                    return True
                return False

            def _blob(self, artifact_id: int, query: dict[str, list[str]], auth: str) -> None:
                """The signed URL: the signature is the credential, valid once."""
                fake.blob_requests.append({"artifact": str(artifact_id), "auth": auth})
                signature = query.get("sig", [""])[0]
                if fake.signed.pop(signature, None) != artifact_id:
                    return self._send(403, {"message": "Server failed to authenticate the request"})
                data = fake.blobs[artifact_id]
                self.send_response(200)
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _list(self, split: Any, items: list[Any], key: str | None = None) -> None:
                """One page of ITEMS (a list, or {"total_count", KEY: list} with KEY)."""
                query = parse_qs(split.query)
                per_page = min(int(query.get("per_page", ["30"])[0]), 100)
                page = int(query.get("page", ["1"])[0])
                last = max(1, -(-len(items) // per_page))
                chunk = items[(page - 1) * per_page : page * per_page]
                others = "".join(
                    f"{name}={values[0]}&"
                    for name, values in query.items()
                    if name not in {"per_page", "page"}
                )

                def link(n: int) -> str:
                    return f"<{fake.url}{split.path}?{others}per_page={per_page}&page={n}>"

                rels = []
                if page < last:
                    rels += [f'{link(page + 1)}; rel="next"', f'{link(last)}; rel="last"']
                if page > 1:
                    rels += [f'{link(page - 1)}; rel="prev"', f'{link(1)}; rel="first"']
                payload = chunk if key is None else {"total_count": len(items), key: chunk}
                self._send(200, payload, {"Link": ", ".join(rels)} if rels else None)

            def do_GET(self) -> None:  # http.server's method names
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

            def do_PATCH(self) -> None:
                self._handle("PATCH")

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        FakeGitHub.live.append(self)
        return self

    def snapshot(self) -> Any:
        return copy.deepcopy((self.issues, self.requests, self.blob_requests, self._ids))

    def restore(self, state: Any) -> None:
        issues, requests, blob_requests, self._ids = copy.deepcopy(state)
        self.issues.clear()
        self.issues.update(issues)
        self.requests[:] = requests
        self.blob_requests[:] = blob_requests

    def stop(self) -> None:
        if self in FakeGitHub.live:
            FakeGitHub.live.remove(self)
        if self._server:
            self._server.shutdown()
