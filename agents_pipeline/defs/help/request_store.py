"""Help requests in fleet.help_requests: submit, claim, complete, fail, and the counts.

A worker claims pending requests (or ones whose lease ran out) with FOR UPDATE SKIP LOCKED and
a lease in a short transaction, answers them outside any transaction, then completes each with
``WHERE status = 'claimed' AND claimed_by = <worker>``: a worker whose lease was taken over
stores nothing, so no request is ever answered twice. The answer, its sources and its LLM
conversation log are written in one transaction.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from agents_pipeline.core import validation
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import NotFoundError
from agents_pipeline.defs.help.answer import Answer
from agents_pipeline.defs.help.facts import HELP_AGENT

MAX_ATTEMPTS = 3
RUN_ID_NAMESPACE = uuid.UUID("0c7a9f3e-52d4-4d3b-9b7e-6a1f2b8c4d10")


# What the operator paths write in requested_by ("operator", "cli:<user>", "launchpad:<run>");
# fleet.submit_help_request writes the asking agent's name instead.
OPERATOR_CHANNELS = frozenset({"operator", "cli", "launchpad"})


@dataclass(frozen=True)
class HelpRequest:
    request_id: int
    question: str
    agent: str | None          # the agent that asked or is asked about
    context: dict[str, Any]
    attempts: int
    agent_id: int | None = None
    requested_by: str | None = None

    @property
    def agent_names(self) -> list[str]:
        """The request's agent plus any named in its context (``{"agent": ...}``/``{"agents": [...]}``)."""
        names = [self.agent] if self.agent else []
        extra = self.context.get("agents") or ([self.context["agent"]] if self.context.get("agent") else [])
        return names + [n for n in extra if isinstance(n, str) and n not in names]


def facts_scope(request: HelpRequest) -> frozenset[int] | None:
    """The agents whose live facts may go into the answer; None means fleet-wide.

    The answer to an agent's request goes back to that agent (fleet.get_help_request), so it may
    hold only that agent's own facts: agents read only their own data (issue #16), whatever other
    agents the question or the context names. Operators' requests see the whole fleet.

    fleet.submit_help_request, the agents' only way in, stores the asking agent's id and its
    name in requested_by, neither of which the agent chooses. Operators and the pipeline store no
    agent, or an operator channel (OPERATOR_CHANNELS) in requested_by. Anything else (a renamed
    agent's old name, a row written by hand) gets the narrower scope: a doubtful request loses
    facts rather than leaking them.
    """
    if request.agent_id is None:
        return None
    by = request.requested_by or ""
    if by != request.agent and by.split(":", 1)[0] in OPERATOR_CHANNELS:
        return None
    return frozenset({request.agent_id})


def conversation_run_id(request_id: int) -> uuid.UUID:
    """One conversation per request, whoever answers it and however often it is retried."""
    return uuid.uuid5(RUN_ID_NAMESPACE, f"help-request:{request_id}")


def _agent_id(cur, name: str | None) -> int | None:
    if name is None:
        return None
    cur.execute("SELECT agent_id FROM fleet.agents WHERE name = %s", (validation.name(name),))
    row = cur.fetchone()
    if row is None:
        raise NotFoundError(f"unknown agent {name!r}")
    return row[0]


def submit(db: Database, question: str, *, agent: str | None = None, requested_by: str = "operator",
           context: dict[str, Any] | None = None, claimed_by: str | None = None, lease_s: float = 120) -> int:
    """Stores an operator's or the pipeline's request; ``claimed_by`` stores it already claimed
    (the CLI answers its own). ``requested_by`` names an operator channel (see facts_scope)."""
    q = validation.text(question, "question", max_len=8192, required=True)
    doc = validation.document(context or {}, "help request context")

    def work(cur):
        cur.execute(
            """INSERT INTO fleet.help_requests (agent_id, requested_by, question, context, status, claimed_by,
                   lease_until, attempts)
               VALUES (%s, %s, %s, %s::jsonb, CASE WHEN %s IS NULL THEN 'pending' ELSE 'claimed' END, %s,
                       CASE WHEN %s IS NULL THEN NULL ELSE now() + make_interval(secs => %s) END,
                       CASE WHEN %s IS NULL THEN 0 ELSE 1 END)
               RETURNING request_id""",
            (_agent_id(cur, agent), requested_by, q, doc, claimed_by, claimed_by, claimed_by, lease_s, claimed_by))
        return cur.fetchone()[0]

    return db.transaction(work)


def claim(db: Database, worker: str, *, limit: int = 5, lease_s: float = 120,
          request_ids: list[int] | None = None) -> list[HelpRequest]:
    """Claims up to ``limit`` requests (optionally only ``request_ids``); requests that already
    used MAX_ATTEMPTS leases end as failed rather than being offered again."""
    def work(cur):
        cur.execute(
            """UPDATE fleet.help_requests SET status = 'failed', lease_until = NULL,
                      error = format('gave up after %%s attempts (the worker died or timed out each time)', attempts)
               WHERE status = 'claimed' AND lease_until < now() AND attempts >= %s""", (MAX_ATTEMPTS,))
        cur.execute(
            """WITH picked AS (
                   SELECT request_id FROM fleet.help_requests
                   WHERE (status = 'pending' OR (status = 'claimed' AND lease_until < now()))
                     AND (%(ids)s::bigint[] IS NULL OR request_id = ANY(%(ids)s::bigint[]))
                   ORDER BY created_at, request_id
                   LIMIT %(limit)s
                   FOR UPDATE SKIP LOCKED)
               UPDATE fleet.help_requests h
               SET status = 'claimed', claimed_by = %(worker)s, attempts = h.attempts + 1,
                   lease_until = now() + make_interval(secs => %(lease)s)
               FROM picked WHERE h.request_id = picked.request_id
               RETURNING h.request_id, h.question, h.agent_id, h.context, h.attempts, h.requested_by""",
            {"ids": request_ids, "limit": max(1, int(limit)), "worker": worker, "lease": float(lease_s)})
        claimed = cur.fetchall()
        ids = [r[2] for r in claimed if r[2] is not None]
        cur.execute("SELECT agent_id, name FROM fleet.agents WHERE agent_id = ANY(%s)", (ids,))
        names = dict(cur.fetchall())
        return [HelpRequest(r[0], r[1], names.get(r[2]), r[3] or {}, r[4], agent_id=r[2], requested_by=r[5])
                for r in claimed]

    return sorted(db.transaction(work), key=lambda r: r.request_id)


def _ensure_help_agent(cur) -> int:
    """The help's own agent row, owner of its LLM conversations. Created paused: it sends no
    heartbeats, and a paused agent is never evaluated nor alerted on."""
    cur.execute(
        """INSERT INTO fleet.agents (name, agent_type, paused, status, status_message, config)
           VALUES (%s, 'pipeline', true, 'paused', 'owns the help answers'' LLM conversations; never alerts',
                   '{"domain": "help"}'::jsonb)
           ON CONFLICT (name) DO NOTHING""", (HELP_AGENT,))
    cur.execute("SELECT agent_id FROM fleet.agents WHERE name = %s", (HELP_AGENT,))
    return cur.fetchone()[0]


def complete(db: Database, request_id: int, worker: str, result: Answer) -> bool:
    """Stores the answer and logs the conversation, if ``worker`` still holds the claim.
    False means another worker took the request over: nothing was written."""
    run_id = conversation_run_id(request_id)

    def work(cur):
        cur.execute(
            """UPDATE fleet.help_requests
               SET status = 'answered', answer = %s, sources = %s::jsonb, answer_mode = %s, answered_at = now(),
                   conversation_run_id = %s::uuid, lease_until = NULL, error = NULL
               WHERE request_id = %s AND status = 'claimed' AND claimed_by = %s
               RETURNING request_id""",
            (result.text, json.dumps(result.sources), result.mode, str(run_id), request_id, worker))
        if cur.fetchone() is None:
            return False
        helper = _ensure_help_agent(cur)
        cur.execute(
            """INSERT INTO fleet.llm_conversations (conversation_id, agent_id, run_id, model, prompt, response,
                   prompt_tokens, completion_tokens, total_tokens, latency_ms, error, metadata)
               VALUES (%s, %s, %s::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
               ON CONFLICT (run_id) DO NOTHING""",
            (f"help-request-{request_id}", helper, str(run_id), result.model, result.prompt, result.text,
             result.prompt_tokens, result.completion_tokens,
             None if result.prompt_tokens is None and result.completion_tokens is None
             else (result.prompt_tokens or 0) + (result.completion_tokens or 0),
             result.latency_ms, result.llm_error,
             json.dumps({"request_id": request_id, "mode": result.mode, "agents": result.agents,
                         "facts": "own" if result.scoped else "fleet",
                         "sources": len(result.sources), "worker": worker})))
        return True

    return db.transaction(work)


def fail(db: Database, request_id: int, worker: str, error: str) -> bool:
    def work(cur):
        cur.execute(
            """UPDATE fleet.help_requests SET status = 'failed', error = %s, lease_until = NULL
               WHERE request_id = %s AND status = 'claimed' AND claimed_by = %s""",
            (error[:2000], request_id, worker))
        return cur.rowcount == 1

    return db.transaction(work)


def release(db: Database, request_ids: list[int], worker: str) -> int:
    """Hands claimed requests back (the worker ran out of time); their attempt is not counted."""
    if not request_ids:
        return 0

    def work(cur):
        cur.execute(
            """UPDATE fleet.help_requests SET status = 'pending', claimed_by = NULL, lease_until = NULL,
                      attempts = greatest(attempts - 1, 0)
               WHERE request_id = ANY(%s) AND status = 'claimed' AND claimed_by = %s""",
            (request_ids, worker))
        return cur.rowcount

    return db.transaction(work)


def counts(db: Database) -> dict[str, int]:
    """Requests per status (every status present, zero included), for plotting."""
    def work(cur):
        cur.execute("SELECT status, count(*) FROM fleet.help_requests GROUP BY status")
        return dict(cur.fetchall())

    found = db.transaction(work)
    return {s: int(found.get(s, 0)) for s in ("pending", "claimed", "answered", "failed", "imported")}


def get(db: Database, request_id: int) -> dict[str, Any] | None:
    def work(cur):
        cur.execute("""SELECT request_id, status, question, answer, sources, answer_mode, error, attempts,
                              claimed_by, created_at, answered_at, conversation_run_id
                       FROM fleet.help_requests WHERE request_id = %s""", (request_id,))
        row = cur.fetchone()
        return dict(row) if row else None

    return db.transaction(work)


def latest_answers(db: Database, limit: int = 10) -> list[dict[str, Any]]:
    def work(cur):
        cur.execute("""SELECT h.request_id, h.question, h.answer, h.answer_mode, h.answered_at, h.requested_by,
                              a.name AS agent, jsonb_array_length(coalesce(h.sources, '[]'::jsonb)) AS sources
                       FROM fleet.help_requests h LEFT JOIN fleet.agents a USING (agent_id)
                       WHERE h.answered_at IS NOT NULL ORDER BY h.answered_at DESC LIMIT %s""", (limit,))
        return [dict(r) for r in cur.fetchall()]

    return db.transaction(work)


def heartbeat_worker(db: Database, name: str, *, period_s: float, grace_s: float) -> None:
    """The answering sensor as an agent of the fleet (like the heartbeats domain's evaluator and
    alert sender): registered on first use and heartbeated each tick, so a stalled sensor shows
    up as down instead of help requests silently piling up."""
    def work(cur):
        cur.execute(
            """INSERT INTO fleet.agents (name, agent_type, period, grace, config)
               VALUES (%s, 'pipeline', make_interval(secs => %s), make_interval(secs => %s), '{"domain": "help"}')
               ON CONFLICT (name) DO NOTHING""", (name, period_s, grace_s))
        cur.execute("""SELECT error FROM fleet.record_heartbeats(ARRAY[%s], ARRAY[NULL::bytea], ARRAY['ok'],
                           ARRAY[now()], ARRAY[NULL::text], ARRAY[NULL::jsonb])""", (name,))
        error = cur.fetchone()[0]
        if error:
            raise NotFoundError(f"heartbeat for {name} refused: {error}")

    db.transaction(work)
