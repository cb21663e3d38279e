"""A local LangSmith for the tests and the benchmark: stdlib http.server in a thread on 127.0.0.1.

It implements exactly the requests the pinned client (langsmith 0.15.1) sends for what the
sync and the push use: ``GET /info``, ``GET /sessions?name=..``, ``GET /sessions/{id}``,
``POST /runs/query`` (cursor pagination, at most 100 runs a page as hosted LangSmith), and the
ingest endpoints ``POST /runs``, ``PATCH /runs/{id}``, ``POST /runs/batch`` and
``POST /runs/multipart``. Any other request shape on those paths gets 400 with a reason, so a
change in what the client sends shows up as a test failure rather than a silent pass.

Like hosted LangSmith it keeps a root's token totals as the sum of its LLM descendants, returns
naive UTC timestamps, and checks ``x-api-key``. Faults (status codes, Retry-After, malformed
bodies) are queued per path for the failure tests.
"""

from __future__ import annotations

import base64
import bisect
import email.parser
import email.policy
import json
import re
import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_PAGE = 100
TENANT_ID = "00000000-0000-4000-8000-000000000001"
QUERY_KEYS = {"session", "start_time", "filter", "select", "id", "cursor", "order", "limit"}
SELECTABLE = {
    "id", "trace_id", "parent_run_id", "parent_run_ids", "name", "run_type", "status", "start_time",
    "end_time", "error", "tags", "extra", "prompt_tokens", "completion_tokens", "total_tokens",
    "prompt_cost", "completion_cost", "total_cost", "first_token_time", "session_id", "dotted_order",
    "inputs", "outputs", "events", "feedback_stats", "app_path", "reference_example_id", "s3_urls",
}
_LT_START = re.compile(r'^lt\(start_time, "([^"]+)"\)$')
_RUN_PART = re.compile(r"^(post|patch)\.([0-9a-f-]{36})(?:\.(inputs|outputs|events|extra|error|serialized))?$")


class BadRequest(Exception):
    pass


def ts(value: datetime | str) -> str:
    """Naive-UTC ISO text with microseconds, as hosted LangSmith returns (and sorts lexically)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


@dataclass
class Fault:
    method: str
    path: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    skip: int = 0  # let this many matching requests through first


class FakeLangSmith:
    def __init__(self, api_key: str = "lsv2_pt_0123456789abcdef0123456789abcdef_0123456789") -> None:
        self.api_key = api_key
        self.lock = threading.RLock()
        self.projects: dict[str, dict[str, Any]] = {}          # id -> project
        self.runs: dict[str, dict[str, Any]] = {}              # id -> run as the API returns it
        self._keys: dict[str, list[tuple[str, str]]] = {}      # project id -> sorted (start, id)
        self._traces: dict[str, list[str]] = {}                # trace id -> run ids
        self.faults: list[Fault] = []
        self.requests: list[tuple[str, str, int]] = []         # method, path, status
        self.query_bodies: list[dict[str, Any]] = []
        self.posted: Counter[str] = Counter()                  # run id -> times created by ingest
        self.duplicate_posts = 0
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> FakeLangSmith:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-langsmith", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- data -----------------------------------------------------------------------------------
    def add_project(self, name: str) -> str:
        with self.lock:
            for p in self.projects.values():
                if p["name"] == name:
                    return p["id"]
            pid = str(uuid.uuid4())
            self.projects[pid] = {"id": pid, "name": name, "tenant_id": TENANT_ID,
                                  "start_time": ts(datetime.now(UTC)), "reference_dataset_id": None}
            self._keys[pid] = []
            return pid

    def add_run(self, project: str, *, start_time: datetime, end_time: datetime | None = None,
                run_id: str | None = None, parent: dict[str, Any] | None = None, run_type: str = "llm",
                name: str = "call", prompt_tokens: int | None = None, completion_tokens: int | None = None,
                cost: float | None = None, error: str | None = None, metadata: dict | None = None,
                tags: list[str] | None = None, model: str | None = None, status: str | None = None) -> dict[str, Any]:
        """Stores a run as LangSmith would after ingesting it; returns the stored dict."""
        pid = self.add_project(project)
        rid = run_id or str(uuid.uuid4())
        start = ts(start_time)
        stamp = datetime.fromisoformat(start).strftime("%Y%m%dT%H%M%S%fZ") + rid
        meta = dict(metadata or {})
        if model:
            meta.setdefault("ls_model_name", model)
        total = None if prompt_tokens is None and completion_tokens is None else (prompt_tokens or 0) + (completion_tokens or 0)
        run = {
            "id": rid, "name": name, "run_type": run_type, "session_id": pid,
            "trace_id": parent["trace_id"] if parent else rid,
            "parent_run_id": parent["id"] if parent else None,
            "dotted_order": f"{parent['dotted_order']}.{stamp}" if parent else stamp,
            "start_time": start, "end_time": ts(end_time) if end_time else None,
            "status": status or ("error" if error else "success" if end_time else "pending"),
            "error": error, "tags": list(tags or []),
            "extra": {"metadata": meta, "invocation_params": {"model": model} if model else {}},
            "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": total,
            "prompt_cost": None, "completion_cost": None, "total_cost": cost, "first_token_time": None,
            "inputs": {}, "outputs": None,
        }
        with self.lock:
            self._store(run)
            self._rollup(run["trace_id"])
        return run

    def bulk_load(self, runs: list[dict[str, Any]]) -> None:
        """Stores ready-made runs (benchmark): one sort instead of an insert each."""
        with self.lock:
            for run in runs:
                self.runs[run["id"]] = run
                self._keys[run["session_id"]].append((run["start_time"], run["id"]))
                self._traces.setdefault(run["trace_id"], []).append(run["id"])
            for keys in self._keys.values():
                keys.sort()

    def finish_run(self, run_id: str, *, end_time: datetime, prompt_tokens: int | None = None,
                   completion_tokens: int | None = None, error: str | None = None) -> None:
        with self.lock:
            run = self.runs[run_id]
            run.update(end_time=ts(end_time), status="error" if error else "success", error=error)
            if prompt_tokens is not None or completion_tokens is not None:
                run.update(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                           total_tokens=(prompt_tokens or 0) + (completion_tokens or 0))
            self._rollup(run["trace_id"])

    def fail(self, method: str, path: str, status: int, times: int = 1, headers: dict[str, str] | None = None,
             body: bytes | None = None, skip: int = 0) -> None:
        """After ``skip`` requests, the next ``times`` requests to ``path`` answer ``status``."""
        with self.lock:
            self.faults.append(Fault(method, path, status, times, dict(headers or {}), body, skip))

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p == path)

    # -- internals ------------------------------------------------------------------------------
    def _store(self, run: dict[str, Any]) -> None:
        old = self.runs.get(run["id"])
        keys = self._keys[run["session_id"]]
        if old is not None:
            keys.remove((old["start_time"], old["id"]))
        else:
            self._traces.setdefault(run["trace_id"], []).append(run["id"])
        self.runs[run["id"]] = run
        bisect.insort(keys, (run["start_time"], run["id"]))

    def _rollup(self, trace_id: str) -> None:
        """Non-LLM runs carry the token and cost totals of their LLM descendants."""
        members = [self.runs[i] for i in self._traces.get(trace_id, ())]
        for run in members:
            if run["run_type"] == "llm":
                continue
            subtree = [r for r in members if r["run_type"] == "llm" and r["dotted_order"].startswith(run["dotted_order"] + ".")]
            if subtree:
                run["prompt_tokens"] = sum(r["prompt_tokens"] or 0 for r in subtree)
                run["completion_tokens"] = sum(r["completion_tokens"] or 0 for r in subtree)
                run["total_tokens"] = run["prompt_tokens"] + run["completion_tokens"]
                costs = [r["total_cost"] for r in subtree if r["total_cost"] is not None]
                run["total_cost"] = sum(costs) if costs else None

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.method == method and fault.path == path and fault.times > 0:
                    if fault.skip > 0:
                        fault.skip -= 1
                        return None
                    fault.times -= 1
                    return fault
        return None

    # -- endpoints ------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"version": "0.10.50", "license_expiration_time": None,
                "batch_ingest_config": {"use_multipart_endpoint": True, "scale_up_qsize_trigger": 1000,
                                        "scale_up_nthreads_limit": 16, "scale_down_nempty_trigger": 4,
                                        "size_limit": 100, "size_limit_bytes": 20_971_520},
                "instance_flags": {"ch_query_enabled": True}}

    def sessions(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        allowed = {"name", "limit", "include_stats", "offset"}
        if set(query) - allowed or "name" not in query:
            raise BadRequest(f"GET /sessions supports {sorted(allowed)} with a name, got {sorted(query)}")
        name = query["name"][0]
        return [dict(p) for p in self.projects.values() if p["name"] == name][:1]

    def query(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        unknown = set(body) - QUERY_KEYS
        if unknown:
            raise BadRequest(f"unsupported query fields {sorted(unknown)}")
        sessions = body.get("session")
        if not isinstance(sessions, list) or not sessions or any(s not in self.projects for s in sessions):
            raise BadRequest("session must list known project ids")
        select = body.get("select")
        if not isinstance(select, list) or not set(select) <= SELECTABLE or "id" not in select:
            raise BadRequest(f"select must be a list of known fields including id, got {select!r}")
        limit = body.get("limit", MAX_PAGE)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be between 1 and {MAX_PAGE}")
        order = body.get("order", "desc")
        if order not in ("asc", "desc"):
            raise BadRequest("order must be asc or desc")
        lo = ts(body["start_time"]) if body.get("start_time") else None
        hi = None
        if body.get("filter") is not None:
            match = _LT_START.match(body["filter"])
            if not match:
                raise BadRequest(f"unsupported filter {body['filter']!r}")
            hi = ts(match.group(1))
        ids = body.get("id")
        if ids is not None and (not isinstance(ids, list) or len(ids) > MAX_PAGE):
            raise BadRequest("id must be a list of at most 100 run ids")
        after = None
        if body.get("cursor") is not None:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(body["cursor"])))
            except (ValueError, TypeError):
                raise BadRequest("malformed cursor") from None
        with self.lock:
            page = self._page(sessions, lo, hi, set(ids) if ids is not None else None, order, after, limit)
            runs = [{k: run.get(k) for k in select} for run in page]
        next_cursor = None
        if len(page) == limit:
            last = page[-1]
            next_cursor = base64.urlsafe_b64encode(json.dumps([last["start_time"], last["id"]]).encode()).decode()
        return {"runs": runs, "cursors": {"next": next_cursor, "prev": None}}

    def _page(self, sessions, lo, hi, ids, order, after, limit) -> list[dict[str, Any]]:
        if len(sessions) == 1:
            keys = self._keys[sessions[0]]
        else:
            keys = sorted(k for s in sessions for k in self._keys[s])
        if ids is not None:
            chosen = sorted((self.runs[i]["start_time"], i) for i in ids
                            if i in self.runs and self.runs[i]["session_id"] in sessions)
            keys = chosen
        out: list[dict[str, Any]] = []
        if order == "asc":
            i = bisect.bisect_left(keys, (lo, "")) if lo else 0
            if after:
                i = max(i, bisect.bisect_right(keys, after))
            while i < len(keys) and len(out) < limit:
                start, rid = keys[i]
                if hi is not None and start >= hi:
                    break
                out.append(self.runs[rid])
                i += 1
        else:
            i = bisect.bisect_left(keys, (hi, "")) if hi else len(keys)
            if after:
                i = min(i, bisect.bisect_left(keys, after))
            while i > 0 and len(out) < limit:
                i -= 1
                start, rid = keys[i]
                if lo is not None and start < lo:
                    break
                out.append(self.runs[rid])
        return out

    def ingest(self, op: str, run: Any) -> None:
        """One post or patch from any ingest endpoint."""
        if not isinstance(run, dict) or not isinstance(run.get("id"), str):
            raise BadRequest(f"{op} needs a run object with an id")
        rid = run["id"]
        if op == "post":
            for key in ("name", "run_type", "start_time", "trace_id", "dotted_order"):
                if not run.get(key):
                    raise BadRequest(f"post of {rid} lacks {key}")
            project = run.get("session_name")
            if not project:
                raise BadRequest(f"post of {rid} names no session_name")
            if rid in self.runs:
                self.duplicate_posts += 1
                return
            self.posted[rid] += 1
            usage = (run.get("outputs") or {}).get("usage_metadata") or {}
            end = run.get("end_time")
            stored = self.add_run(project, start_time=ts(run["start_time"]),
                                  end_time=datetime.fromisoformat(ts(end)) if end else None,
                                  run_id=rid, run_type=run["run_type"], name=run["name"],
                                  prompt_tokens=usage.get("input_tokens"), completion_tokens=usage.get("output_tokens"),
                                  cost=usage.get("total_cost"), error=run.get("error"),
                                  metadata=(run.get("extra") or {}).get("metadata"), tags=run.get("tags"))
            stored["inputs"], stored["outputs"] = run.get("inputs") or {}, run.get("outputs")
        else:
            if rid not in self.runs:
                raise BadRequest(f"patch of unknown run {rid}")
            if run.get("end_time"):
                self.finish_run(rid, end_time=datetime.fromisoformat(ts(run["end_time"])), error=run.get("error"))


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
        status = 200
        try:
            if self.headers.get("x-api-key") != fake.api_key:
                status = 401
                self._send(401, {"detail": "Invalid token"})
                return
            fault = fake.take_fault(method, path)
            if fault is not None:
                status = fault.status
                self._send(fault.status, {"detail": "injected fault"}, raw=fault.body, headers=fault.headers)
                return
            status, payload = self._route(method, path, body)
            self._send(status, payload)
        except BadRequest as exc:
            status = 400
            self._send(400, {"detail": str(exc)})
        finally:
            with fake.lock:
                fake.requests.append((method, path, status))

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
