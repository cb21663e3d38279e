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

This module is the API: what each endpoint accepts and answers. The storage is in
fake_langsmith_store.py, the HTTP handler and its routes in fake_langsmith_http.py.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from http.server import ThreadingHTTPServer
from typing import Any

from agents_pipeline_tests.langsmith.fake_langsmith_http import BadRequest, _Handler
from agents_pipeline_tests.langsmith.fake_langsmith_store import TENANT_ID, RunStore, ts

__all__ = ["TENANT_ID", "BadRequest", "FakeLangSmith", "Fault", "_Handler", "ts"]

MAX_PAGE = 100
QUERY_KEYS = {"session", "start_time", "filter", "select", "id", "cursor", "order", "limit"}
SELECTABLE = {
    "id", "trace_id", "parent_run_id", "parent_run_ids", "name", "run_type", "status", "start_time",
    "end_time", "error", "tags", "extra", "prompt_tokens", "completion_tokens", "total_tokens",
    "prompt_cost", "completion_cost", "total_cost", "first_token_time", "session_id", "dotted_order",
    "inputs", "outputs", "events", "feedback_stats", "app_path", "reference_example_id", "s3_urls",
}
_LT_START = re.compile(r'^lt\(start_time, "([^"]+)"\)$')


@dataclass
class Fault:
    method: str
    path: str
    status: int
    times: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    skip: int = 0  # let this many matching requests through first


class FakeLangSmith(RunStore):
    """The server: the store (projects, runs) behind the endpoints, with faults and a request log."""

    def __init__(self, api_key: str = "lsv2_pt_0123456789abcdef0123456789abcdef_0123456789") -> None:
        super().__init__()
        self.api_key = api_key
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

    # -- faults ------------------------------------------------------------------------------------
    def fail(self, method: str, path: str, status: int, times: int = 1, headers: dict[str, str] | None = None,
             body: bytes | None = None, skip: int = 0) -> None:
        """After ``skip`` requests, the next ``times`` requests to ``path`` answer ``status``."""
        with self.lock:
            self.faults.append(Fault(method, path, status, times, dict(headers or {}), body, skip))

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if m == method and p == path)

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
