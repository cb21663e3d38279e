"""The fake LangSmith's storage: projects and runs held the way hosted LangSmith answers for them.

Kept apart from the HTTP face (fake_langsmith_http.py) and the API's request checks
(fake_langsmith.py) because it is the part a test or the benchmark fills directly
(``add_run``, ``bulk_load``) and the part whose rules must match the real service: runs sorted
by (start time, id) per project for cursor pagination, a root's token and cost totals kept as
the sum of its LLM descendants, timestamps as naive UTC text.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

TENANT_ID = "00000000-0000-4000-8000-000000000001"


def ts(value: datetime | str) -> str:
    """Naive-UTC ISO text with microseconds, as hosted LangSmith returns (and sorts lexically)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")


class RunStore:
    """Projects and runs, indexed for paging by start time; every change under ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.projects: dict[str, dict[str, Any]] = {}          # id -> project
        self.runs: dict[str, dict[str, Any]] = {}              # id -> run as the API returns it
        self._keys: dict[str, list[tuple[str, str]]] = {}      # project id -> sorted (start, id)
        self._traces: dict[str, list[str]] = {}                # trace id -> run ids

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
