"""The help's two ways in: a question asked now (the CLI), and the queue drained by a worker
(the sensor, the asset). Both store the request, its answer and its conversation the same way.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass, field

from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import AgentsPipelineError
from agents_pipeline.defs.help import request_store
from agents_pipeline.defs.help.answer import Answer, answer
from agents_pipeline.defs.help.llm import LLMSettings

log = logging.getLogger(__name__)


def worker_name(kind: str) -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}"


def ask(db: Database, question: str, *, agent: str | None = None, llm: LLMSettings | None = None,
        requested_by: str | None = None, read_db: Database | None = None) -> tuple[int, Answer]:
    """Answers at once: the request is stored already claimed by this process, then completed.
    Operators only (the CLI, benchmarks), so fleet-wide: agents ask through
    fleet.submit_help_request and are answered by drain with their own facts."""
    worker = worker_name("cli")
    lease = 60.0 + (llm.timeout_s if llm else 0.0)
    request_id = request_store.submit(db, question, agent=agent, requested_by=requested_by or worker,
                                      claimed_by=worker, lease_s=lease)
    try:
        # Retrieval and the live facts only display: the replica may serve them (read_db).
        result = answer(read_db or db, question, [agent] if agent else [], llm)
    except Exception as exc:
        request_store.fail(db, request_id, worker, f"{type(exc).__name__}: {exc}")
        raise
    request_store.complete(db, request_id, worker, result)
    return request_id, result


@dataclass
class DrainReport:
    answered: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    released: list[int] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)      # another worker took the lease over
    modes: dict[str, int] = field(default_factory=dict)


def drain(db: Database, worker: str, *, llm: LLMSettings | None = None, budget_s: float = 40.0,
          batch: int = 5, max_requests: int = 50, request_ids: list[int] | None = None,
          read_db: Database | None = None) -> DrainReport:
    """Answers pending requests until none is left, ``max_requests`` are done, or the time
    budget would be overrun (a sensor tick must end well inside Dagster's 60 s limit): claimed
    requests that do not fit are released for the next tick. Claims and answers are written
    through ``db``; retrieval and live facts are read through ``read_db`` (a replica) if given."""
    report = DrainReport()
    deadline = time.monotonic() + budget_s
    per_request = 2.0 + (llm.timeout_s if llm else 0.0)
    lease = max(60.0, budget_s + per_request)
    while len(report.answered) + len(report.failed) < max_requests and time.monotonic() + per_request < deadline:
        claimed = request_store.claim(db, worker, limit=batch, lease_s=lease, request_ids=request_ids)
        if not claimed:
            break
        for i, req in enumerate(claimed):
            if time.monotonic() + per_request > deadline:
                rest = [r.request_id for r in claimed[i:]]
                request_store.release(db, rest, worker)
                report.released += rest
                break
            try:
                result = answer(read_db or db, req.question, req.agent_names, llm,
                                only_agents=request_store.facts_scope(req))
            except AgentsPipelineError as exc:
                log.warning("help request %s failed: %s", req.request_id, exc)
                if request_store.fail(db, req.request_id, worker, str(exc)):
                    report.failed.append(req.request_id)
                continue
            if request_store.complete(db, req.request_id, worker, result):
                report.answered.append(req.request_id)
                report.modes[result.mode] = report.modes.get(result.mode, 0) + 1
            else:
                report.lost.append(req.request_id)
    return report
