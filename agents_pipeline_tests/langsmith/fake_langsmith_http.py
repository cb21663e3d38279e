"""The fake LangSmith's HTTP face: the request handler, its routes, and the body parsers.

Kept apart from what the fake knows (fake_langsmith_store.py) and what it accepts
(fake_langsmith.py) because this is the wire: the paths the pinned client calls, chunked and
multipart bodies as it sends them, the API key check, and queued faults answered before any
route. Any request the routes do not know gets 404, any body they cannot read 400
(``BadRequest``), so a change in the client shows up as a failing test.
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import re
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from agents_pipeline_tests.langsmith.fake_langsmith import FakeLangSmith

_RUN_PART = re.compile(r"^(post|patch)\.([0-9a-f-]{36})(?:\.(inputs|outputs|events|extra|error|serialized))?$")


class BadRequest(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLangSmith
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the tests read fake.requests
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: Any = None, raw: bytes | None = None,
              headers: dict[str, str] | None = None) -> None:
        data = raw if raw is not None else json.dumps(payload if payload is not None else {}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self, method: str) -> None:
        fake = self.fake
        path = urlsplit(self.path).path
        body = self._body() if method in ("POST", "PATCH") else b""
        raw: bytes | None = None
        headers: dict[str, str] | None = None
        try:
            if self.headers.get("x-api-key") != fake.api_key:
                status, payload = 401, {"detail": "Invalid token"}
            elif (fault := fake.take_fault(method, path)) is not None:
                status, payload, raw, headers = fault.status, {"detail": "injected fault"}, fault.body, fault.headers
            else:
                status, payload = self._route(method, path, body)
        except BadRequest as exc:
            status, payload = 400, {"detail": str(exc)}
        except Exception:
            self._record(method, path, 500)
            raise
        # Recorded before the answer leaves: a client holding its answer finds its request
        # counted (recorded after, a test's count could run first and miss it).
        self._record(method, path, status)
        self._send(status, payload, raw=raw, headers=headers)

    def _record(self, method: str, path: str, status: int) -> None:
        with self.fake.lock:
            self.fake.requests.append((method, path, status))

    def _route(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        fake = self.fake
        query = parse_qs(urlsplit(self.path).query)
        if method == "GET" and path == "/info":
            return 200, fake.info()
        if method == "GET" and path == "/sessions":
            return 200, fake.sessions(query)
        if method == "GET" and path.startswith("/sessions/"):
            project = fake.projects.get(path.rsplit("/", 1)[1])
            return (200, project) if project else (404, {"detail": "not found"})
        if method == "POST" and path == "/runs/query":
            parsed = _json(body)
            with fake.lock:
                fake.query_bodies.append(parsed)
            return 200, fake.query(parsed)
        if method == "POST" and path == "/runs":
            run = _json(body)
            with fake.lock:
                if isinstance(run, dict) and run.get("id") in fake.runs:
                    return 409, {"detail": "run already exists"}
                fake.ingest("post", run)
            return 202, {"message": "Run created"}
        if method == "PATCH" and path.startswith("/runs/"):
            run = {**(_json(body) or {}), "id": path.rsplit("/", 1)[1]}
            with fake.lock:
                fake.ingest("patch", run)
            return 202, {"message": "Run updated"}
        if method == "POST" and path == "/runs/batch":
            doc = _json(body)
            if not isinstance(doc, dict) or set(doc) - {"post", "patch"}:
                raise BadRequest("batch body must be {post: [...], patch: [...]}")
            with fake.lock:
                for op in ("post", "patch"):
                    for run in doc.get(op) or []:
                        fake.ingest(op, run)
            return 202, {"message": "Runs batch ingested"}
        if method == "POST" and path == "/runs/multipart":
            ops = _multipart(self.headers.get("Content-Type", ""), body)
            with fake.lock:
                for op, run in ops:
                    fake.ingest(op, run)
            return 202, {"message": "Runs ingested"}
        return 404, {"detail": f"no route for {method} {path}"}

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")


def _json(body: bytes) -> Any:
    try:
        return json.loads(body or b"null")
    except ValueError:
        raise BadRequest("body is not JSON") from None


def _multipart(content_type: str, body: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Parses the client's multipart/form-data: ``post.<id>`` then ``post.<id>.<field>`` parts."""
    if not content_type.startswith("multipart/form-data") or "boundary=" not in content_type:
        raise BadRequest("multipart ingest needs multipart/form-data with a boundary")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
    if not message.is_multipart():
        raise BadRequest("multipart body could not be parsed")
    runs: dict[tuple[str, str], dict[str, Any]] = {}
    order: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        match = _RUN_PART.match(name or "")
        if not match:
            raise BadRequest(f"unsupported multipart part {name!r}")
        if part.get_content_type() != "application/json":
            raise BadRequest(f"part {name} must be application/json")
        value = _json(part.get_payload(decode=True))
        op, rid, key = match.groups()
        if key is None:
            if not isinstance(value, dict) or (op, rid) in runs:
                raise BadRequest(f"part {name} must be the first, JSON object part of its run")
            runs[(op, rid)] = {**value, "id": rid}
            order.append((op, rid))
        else:
            if (op, rid) not in runs:
                raise BadRequest(f"part {name} arrived before its run")
            runs[(op, rid)][key] = value
    return [(op, runs[(op, rid)]) for op, rid in order]
