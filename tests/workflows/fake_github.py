"""A fake GitHub REST API on 127.0.0.1: the issue-comment endpoints, answering like GitHub.

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
Every request is recorded (method, path, query, authorization).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

LIST = re.compile(r"^/repos/([\w.-]+/[\w.-]+)/issues/(\d+)/comments$")
ONE = re.compile(r"^/repos/([\w.-]+/[\w.-]+)/issues/comments/(\d+)$")


@dataclass
class FakeGitHub:
    token: str
    issues: dict[tuple[str, int], list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
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
                if found := LIST.match(split.path):
                    key = (found.group(1), int(found.group(2)))
                    if key not in fake.issues:
                        return self._send(404, {"message": "Not Found"})
                    if method == "GET":
                        return self._list(split, key)
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

            def _list(self, split: Any, key: tuple[str, int]) -> None:
                query = parse_qs(split.query)
                per_page = min(int(query.get("per_page", ["30"])[0]), 100)
                page = int(query.get("page", ["1"])[0])
                comments = fake.issues[key]
                last = max(1, -(-len(comments) // per_page))
                chunk = comments[(page - 1) * per_page : page * per_page]

                def link(n: int) -> str:
                    return f"<{fake.url}{split.path}?per_page={per_page}&page={n}>"

                rels = []
                if page < last:
                    rels += [f'{link(page + 1)}; rel="next"', f'{link(last)}; rel="last"']
                if page > 1:
                    rels += [f'{link(page - 1)}; rel="prev"', f'{link(1)}; rel="first"']
                self._send(200, chunk, {"Link": ", ".join(rels)} if rels else None)

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
        return copy.deepcopy((self.issues, self.requests, self._ids))

    def restore(self, state: Any) -> None:
        issues, requests, self._ids = copy.deepcopy(state)
        self.issues.clear()
        self.issues.update(issues)
        self.requests[:] = requests

    def stop(self) -> None:
        if self in FakeGitHub.live:
            FakeGitHub.live.remove(self)
        if self._server:
            self._server.shutdown()
