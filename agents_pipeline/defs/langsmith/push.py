"""Forwarding conversations agents logged locally (fleet.llm_conversations) to LangSmith.

A batch is claimed with ``FOR UPDATE SKIP LOCKED`` (two pushers never send the same rows),
sent with ``multipart_ingest`` under each conversation's deterministic run id, and marked
sent in the same transaction only when the client reported no ingest error. A crash between
LangSmith's accept and our commit re-sends the same ids, which LangSmith deduplicates (a 409
counts as accepted). Conversations that LangSmith already holds (marked sent by the SQLite
migration, or pulled back by the sync under the same run id) are never sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import sqlalchemy as sa
from langsmith import Client

from agents_pipeline.defs.langsmith.client import LangSmithSyncError, Redactor, describe_error

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 10  # after this many failed pushes a conversation waits for an operator


@dataclass
class PushResult:
    sent: int = 0
    already_in_langsmith: int = 0
    failed: int = 0
    batches: int = 0
    unsent_remaining: int = 0
    gave_up: int = 0
    error: str | None = None


CLAIM = sa.text("""
    SELECT c.conversation_pk, c.run_id::text AS run_id, c.conversation_id, c.model, c.prompt, c.response,
           c.prompt_tokens, c.completion_tokens, c.total_tokens, c.cost, c.latency_ms, c.error,
           c.created_at, c.metadata, a.name AS agent
    FROM fleet.llm_conversations c LEFT JOIN fleet.agents a ON a.agent_id = c.agent_id
    WHERE c.langsmith_sent_at IS NULL AND c.push_attempts < :max_attempts
    ORDER BY c.created_at, c.conversation_pk
    LIMIT :n
    FOR UPDATE OF c SKIP LOCKED""")


def conversation_run(row: Any, project: str) -> dict[str, Any]:
    """The LangSmith run for one conversation; a fresh dict each call (the client mutates it)."""
    end = row.created_at.astimezone(UTC)
    start = end - timedelta(milliseconds=row.latency_ms) if row.latency_ms and row.latency_ms > 0 else end
    metadata = {**(row.metadata or {}), "conversation_id": row.conversation_id}
    if row.agent:
        metadata["agents_pipeline_agent"] = row.agent
    if row.model:
        metadata["ls_model_name"] = row.model
    usage = {"input_tokens": row.prompt_tokens or 0, "output_tokens": row.completion_tokens or 0,
             "total_tokens": row.total_tokens or 0}
    if row.cost is not None:
        usage["total_cost"] = float(row.cost)
    outputs = {"response": row.response, "usage_metadata": usage}
    return {
        "id": row.run_id, "trace_id": row.run_id,
        "dotted_order": f"{start.strftime('%Y%m%dT%H%M%S%fZ')}{row.run_id}",
        "name": row.model or "llm", "run_type": "llm", "session_name": project,
        "start_time": start, "end_time": end,
        "inputs": {"prompt": row.prompt}, "outputs": outputs,
        "error": row.error, "extra": {"metadata": metadata},
        "tags": [f"agent:{row.agent}"] if row.agent else [],
    }


def _is_transient(error: LangSmithSyncError) -> bool:
    return error.retryable or error.status in (None, 408, 429) or (error.status or 0) >= 500


def push_conversations(engine: sa.Engine, client: Client, ingest_errors: list[BaseException], project: str, *,
                       redact: Redactor, batch_size: int = 100, max_batches: int = 50) -> PushResult:
    """Pushes up to ``max_batches`` batches; ``ingest_errors`` is the client's error-callback list."""
    result = PushResult()
    with engine.begin() as conn:
        result.already_in_langsmith = conn.execute(sa.text("""
            UPDATE fleet.llm_conversations c SET langsmith_sent_at = now(), push_error = NULL
            FROM fleet.llm_runs r
            WHERE r.run_id = c.run_id AND c.langsmith_sent_at IS NULL""")).rowcount
    for _ in range(max_batches):
        with engine.begin() as conn:
            rows = conn.execute(CLAIM, {"n": batch_size, "max_attempts": MAX_ATTEMPTS}).all()
            if not rows:
                break
            result.batches += 1
            sent, failed = _send_batch(client, ingest_errors, rows, project, redact)
            if sent:
                conn.execute(sa.text("""UPDATE fleet.llm_conversations
                    SET langsmith_sent_at = now(), push_error = NULL, push_attempts = push_attempts + 1
                    WHERE conversation_pk = ANY(:pks)"""), {"pks": sent})
            for message, pks in failed.items():
                conn.execute(sa.text("""UPDATE fleet.llm_conversations
                    SET push_attempts = push_attempts + 1, push_error = :msg
                    WHERE conversation_pk = ANY(:pks)"""), {"pks": pks, "msg": message[:1000]})
                result.error = message
            result.sent += len(sent)
            result.failed += sum(len(p) for p in failed.values())
        if result.failed:
            break  # LangSmith is refusing or down: leave the rest for the next run
    with engine.begin() as conn:
        counts = conn.execute(sa.text("""
            SELECT count(*) FILTER (WHERE push_attempts < :m), count(*) FILTER (WHERE push_attempts >= :m)
            FROM fleet.llm_conversations WHERE langsmith_sent_at IS NULL"""), {"m": MAX_ATTEMPTS}).one()
        result.unsent_remaining, result.gave_up = int(counts[0]), int(counts[1])
    return result


def _send_batch(client: Client, ingest_errors: list[BaseException], rows: list[Any], project: str,
                redact: Redactor) -> tuple[list[int], dict[str, list[int]]]:
    """Returns the pks LangSmith accepted and, per error message, the pks it did not."""
    step = f"push of {len(rows)} conversations to LangSmith project {project!r}"
    ingest_errors.clear()
    try:
        client.multipart_ingest(create=[conversation_run(r, project) for r in rows])
    except Exception as exc:  # raised (not swallowed): e.g. a run the client itself refuses
        ingest_errors.append(exc)
    if not ingest_errors:
        return [r.conversation_pk for r in rows], {}
    error = describe_error(ingest_errors[-1], redact, step)
    log.warning("%s failed: %s", step, error)
    if _is_transient(error) or len(rows) == 1:
        return [], {str(error): [r.conversation_pk for r in rows]}
    # A refused batch (4xx): send one by one so that one bad conversation does not hold back the rest.
    sent: list[int] = []
    failed: dict[str, list[int]] = {}
    for row in rows:
        run = conversation_run(row, project)
        try:
            client.create_run(run.pop("name"), run.pop("inputs"), run.pop("run_type"),
                              project_name=run.pop("session_name"), **run)
            sent.append(row.conversation_pk)
        except Exception as exc:
            message = str(describe_error(exc, redact, f"push of conversation {row.run_id}"))
            failed.setdefault(message, []).append(row.conversation_pk)
    return sent, failed
