"""SharedState: the API agents import to reach the fleet's shared state in PostgreSQL.

Every call goes through a ``fleet.*`` function that checks the agent's token, so the same
code works under the narrow agent login and under the operator's. The token never leaves the
process: connections carry its SHA-256 (the proof) as a session setting, never in statement
text, and the server stores a hash of that. A call the
server refuses under the agent's rate limit raises RateLimitedError with when to retry. The
task calls (submit_task, claim_tasks, complete, fail, extend) live in core/tasks.py, broadcast
and peers in core/peers.py.
Imports psycopg2 only.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agents_pipeline.core import settings, validation
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import ConflictError, NotFoundError, RateLimitedError, ValidationError
from agents_pipeline.core.heartbeat_writer import HeartbeatItem, HeartbeatWriter, send_batch
from agents_pipeline.core.peers import PeerMessaging
from agents_pipeline.core.registry import token_proof
from agents_pipeline.core.tasks import Task, TaskQueue

KINDS = ("ok", "start", "fail", "log")
PROOF_SETTING = "agents_pipeline.proof"   # read by fleet.session_proof()
RUN_ID_NAMESPACE = uuid.UUID("6f1c2a52-7d1e-4c55-9a0e-3c1f4f0a9b11")


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: Any
    version: int
    updated_by: str | None
    updated_at: datetime


@dataclass(frozen=True)
class Message:
    message_id: int
    from_agent: str | None
    message_type: str
    payload: dict
    created_at: datetime


def resolve_url(url: str | None = None) -> str:
    """The explicit URL, else AGENTS_PIPELINE_DATABASE_URL, else the project-local cluster."""
    if url:
        return url
    env = os.environ.get(settings.DATABASE_URL)
    if env:
        return env
    from agents_pipeline.core.localdb import LocalCluster

    return LocalCluster.default().url()


def conversation_run_id(agent: str, conversation_id: str | None, created_at: datetime, prompt: str | None) -> uuid.UUID:
    """Deterministic LangSmith run id: the same conversation always maps to the same run."""
    digest = hashlib.sha256((prompt or "").encode("utf-8")).hexdigest()
    return uuid.uuid5(RUN_ID_NAMESPACE, f"{agent}\x1f{conversation_id or ''}\x1f{created_at.isoformat()}\x1f{digest}")


class SharedState(TaskQueue, PeerMessaging):
    """Connection-pooled, retrying access to shared state for one agent (or the operator).

    ``agent`` and ``token`` are the defaults for calls that act as an agent; the token falls
    back to AGENTS_PIPELINE_AGENT_TOKEN. Connected with operator credentials, calls may name
    any agent and omit the token.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        agent: str | None = None,
        token: str | None = None,
        maxconn: int = 8,
        retry_window: float | None = None,
    ) -> None:
        self.agent = validation.name(agent) if agent is not None else None
        secret = token if token is not None else os.environ.get(settings.AGENT_TOKEN) or None
        # The proof rides in each connection's startup packet (a session setting the agent
        # functions read), so it is in no statement text, log line or pg_stat_activity row;
        # the calls below pass NULL (self.proof stays None) in its place.
        proof = {PROOF_SETTING: token_proof(secret).hex()} if secret else None
        self.db = Database(resolve_url(url), maxconn=maxconn, retry_window=retry_window,
                           application_name=f"agent:{self.agent}" if self.agent else "agents_pipeline",
                           session_settings=proof, password=secret)
        self._writer = HeartbeatWriter(self.db)

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        self._writer.close()
        self.db.close()

    def __enter__(self) -> SharedState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _who(self, agent: str | None) -> str:
        name = agent if agent is not None else self.agent
        if name is None:
            raise ValidationError("no agent named: pass agent= or create SharedState(agent=...)")
        return validation.name(name)

    @staticmethod
    def _refused(what: str, retry_after_s: float | None) -> RateLimitedError:
        return RateLimitedError(f"{what} refused by the agent's rate limit; retry after {retry_after_s or 0:.1f} s",
                                retry_after_s)

    # -- heartbeats ------------------------------------------------------------------------------
    def _item(self, agent: str | None, kind: str, message: Any, payload: Any, sent_at: datetime | None) -> HeartbeatItem:
        name = self._who(agent)
        if kind not in KINDS:
            raise ValidationError(f"heartbeat kind must be one of {', '.join(KINDS)}, got {kind!r}")
        return HeartbeatItem(
            agent=name, kind=kind,
            sent_at=sent_at or datetime.now(UTC),
            message=validation.text(message, "heartbeat message", max_len=validation.MAX_MESSAGE),
            payload=validation.document(payload, "heartbeat payload"),
        )

    def heartbeat(self, agent: str | None = None, *, kind: str = "ok", message: Any = None,
                  payload: Any = None, sent_at: datetime | None = None, timeout: float | None = None) -> datetime:
        """Records one heartbeat; returns the database's receive time once it is committed."""
        item = self._item(agent, kind, message, payload, sent_at)
        return self._writer.submit(item).result(timeout)

    def start(self, agent: str | None = None, message: Any = None) -> datetime:
        """A unit of work began: without a success before the grace runs out, it is an overrun."""
        return self.heartbeat(agent, kind="start", message=message)

    def fail(self, target: Task | str | None = None, message: Any = None, retry_in: float | None = None, *,
             permanent: bool = False) -> datetime | str:
        """Two failures share this name: ``fail(task, error, retry_in)`` fails one attempt of a
        claimed task (see fail_task; returns the task's new state), and ``fail(agent, message)``,
        the older heartbeat signal, reports that the agent itself failed: it is marked down at once."""
        if isinstance(target, Task):
            return self.fail_task(target, message, retry_in, permanent=permanent)
        if retry_in is not None or permanent:
            raise ValidationError("retry_in and permanent apply to a task: pass the Task that failed")
        return self.heartbeat(target, kind="fail", message=message)

    def heartbeat_many(self, items: Iterable[Mapping[str, Any]]) -> list[datetime | Exception]:
        """The batch path: one statement for many heartbeats (each a mapping with ``agent`` and
        optionally ``kind``, ``message``, ``payload``, ``sent_at``). Returns, per item, its
        receive time or the error that refused it; refused items store nothing."""
        batch = [
            self._item(i.get("agent"), i.get("kind", "ok"), i.get("message"), i.get("payload"), i.get("sent_at"))
            for i in items
        ]
        return send_batch(self.db, batch) if batch else []

    # -- key-value store -------------------------------------------------------------------------
    def get(self, key: str, *, agent: str | None = None) -> KeyValue | None:
        """Reads a key. Agents read under '<name>/' and the prefixes granted to them."""
        key = validation.name(key, "key")
        name = agent or self.agent
        name = validation.name(name) if name is not None else None

        def work(cur):
            cur.execute("SELECT value, version, updated_by, updated_at FROM fleet.kv_get(%s, %s::bytea, %s)",
                        (name, self.proof, key))
            return cur.fetchone()

        row = self.db.transaction(work)
        return None if row is None else KeyValue(key, row[0], row[1], row[2], row[3])

    def set(self, key: str, value: Any, *, expected_version: int | None = None, agent: str | None = None,
            write_id: uuid.UUID | str | None = None) -> int:
        """Stores ``value`` under ``key``; returns the new version. With ``expected_version``
        it is a compare-and-set (0: the key must not exist) and raises ConflictError on a lost race.
        ``write_id`` (default: a new one) makes a retried write a no-op that answers its version."""
        key = validation.name(key, "key")
        doc = validation.document(value, f"value of {key!r}", max_bytes=validation.MAX_VALUE)
        name = agent or self.agent
        if name is not None:
            name = validation.name(name)
        write_id = uuid.UUID(str(write_id)) if write_id is not None else uuid.uuid4()

        def work(cur):
            cur.execute(
                "SELECT ok, version, retry_after_s FROM fleet.kv_set(%s, %s::bytea, %s, %s::jsonb, %s, %s::uuid)",
                (name, self.proof, key, doc, expected_version, str(write_id)),
            )
            return cur.fetchone()

        ok, version, retry = self.db.transaction(work)
        if retry is not None:
            raise self._refused(f"write of key {key!r}", retry)
        if not ok:
            raise ConflictError(
                f"key {key!r} is at version {version}, not {expected_version}", current_version=version
            )
        return version

    def compare_and_set(self, key: str, value: Any, expected_version: int, *, agent: str | None = None) -> int:
        return self.set(key, value, expected_version=expected_version, agent=agent)

    # -- messages ----------------------------------------------------------------------------------
    def send_message(self, to: str | None, message_type: str, payload: Any = None, *, agent: str | None = None,
                     client_id: uuid.UUID | str | None = None) -> int:
        """Queues a message for agent ``to`` (None: whichever agent claims it first). The same
        ``client_id`` (default: a new one) sent again queues nothing and answers the first id."""
        name = self._who(agent)
        to = validation.name(to, "recipient") if to is not None else None
        mtype = validation.text(message_type, "message type", max_len=200, required=True)
        doc = validation.document(payload if payload is not None else {}, "message payload", max_bytes=256 * 1024)
        client_id = str(uuid.UUID(str(client_id)) if client_id is not None else uuid.uuid4())

        def work(cur):
            cur.execute("SELECT message_id, retry_after_s FROM fleet.send_message(%s, %s::bytea, %s, %s, %s::jsonb, %s::uuid)",
                        (name, self.proof, to, mtype, doc, client_id))
            return cur.fetchone()

        message_id, retry = self.db.transaction(work)
        if retry is not None:
            raise self._refused("message", retry)
        return message_id

    def claim_messages(self, limit: int = 10, *, lease_s: float = 60.0, agent: str | None = None) -> list[Message]:
        """Claims up to ``limit`` messages; another consumer never gets the same one while the
        lease runs. Acknowledge each with ack_message, or it is offered again after the lease."""
        name = self._who(agent)
        if not 0 < lease_s <= 3600 or not 1 <= limit <= 1000:
            raise ValidationError(f"a claim takes 1 to 1000 messages for at most 3600 s, got {limit} for {lease_s} s")

        def work(cur):
            cur.execute(
                "SELECT message_id, from_agent, message_type, payload, created_at "
                "FROM fleet.claim_messages(%s, %s::bytea, %s, make_interval(secs => %s))",
                (name, self.proof, int(limit), float(lease_s)),
            )
            return cur.fetchall()

        return [Message(*row) for row in self.db.transaction(work)]

    def ack_message(self, message_id: int, *, agent: str | None = None) -> None:
        name = self._who(agent)

        def work(cur):
            cur.execute("SELECT fleet.ack_message(%s, %s::bytea, %s)", (name, self.proof, int(message_id)))
            return cur.fetchone()[0]

        if not self.db.transaction(work):
            raise NotFoundError(f"message {message_id} is not claimed by {name!r}")

    # -- LLM conversations -------------------------------------------------------------------------
    def record_conversation(
        self, prompt: str, response: str | None, *, model: str | None = None,
        conversation_id: str | None = None, prompt_tokens: int | None = None,
        completion_tokens: int | None = None, cost: float | None = None,
        latency_ms: float | None = None, error: str | None = None,
        metadata: Mapping[str, Any] | None = None, created_at: datetime | None = None,
        run_id: uuid.UUID | str | None = None, agent: str | None = None,
    ) -> uuid.UUID:
        """Logs one LLM call; returns its (deterministic) run id. Recording it twice stores it once."""
        name = self._who(agent)
        created = created_at or datetime.now(UTC)
        prompt = validation.text(prompt, "prompt", required=True)
        response = validation.text(response, "response")
        rid = uuid.UUID(str(run_id)) if run_id else conversation_run_id(name, conversation_id, created, prompt)
        args = (
            name, self.proof, str(rid), validation.text(conversation_id, "conversation id", max_len=500),
            validation.text(model, "model", max_len=200), prompt, response, prompt_tokens,
            completion_tokens, cost, latency_ms, validation.text(error, "error", max_len=validation.MAX_MESSAGE),
            validation.document(dict(metadata or {}), "conversation metadata"), created,
        )

        def work(cur):
            cur.execute(
                "SELECT conversation_pk, retry_after_s FROM fleet.record_conversation("
                "%s, %s::bytea, %s::uuid, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s)",
                args,
            )
            return cur.fetchone()

        _, retry = self.db.transaction(work)
        if retry is not None:
            raise self._refused("conversation", retry)
        return rid

    # -- metrics from agents on other hosts ----------------------------------------------------------
    def report_metrics(self, metrics: Mapping[str, float], *, host: str | None = None,
                       sampled_at: datetime | None = None, agent: str | None = None) -> int:
        name = self._who(agent)
        import socket

        host_name = validation.text(host or socket.gethostname(), "host", max_len=255, required=True)
        for key, value in metrics.items():
            validation.text(key, "metric name", max_len=200, required=True)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValidationError(f"metric {key!r} must be a number, got {type(value).__name__}")
        doc = validation.document(dict(metrics), "metrics")

        if len(metrics) > 100:
            raise ValidationError(f"at most 100 metrics per call, got {len(metrics)}")

        def work(cur):
            cur.execute("SELECT stored, retry_after_s FROM fleet.report_metrics(%s, %s::bytea, %s, %s::jsonb, %s)",
                        (name, self.proof, host_name, doc, sampled_at))
            return cur.fetchone()

        stored, retry = self.db.transaction(work)
        if retry is not None:
            raise self._refused("metrics", retry)
        return stored

    # -- help ----------------------------------------------------------------------------------------
    def submit_help_request(self, question: str, context: Mapping[str, Any] | None = None,
                            *, agent: str | None = None) -> int:
        name = self._who(agent)
        q = validation.text(question, "question", max_len=8192, required=True)
        doc = validation.document(dict(context or {}), "help request context", max_bytes=16 * 1024)

        def work(cur):
            cur.execute("SELECT request_id, retry_after_s FROM fleet.submit_help_request(%s, %s::bytea, %s, %s::jsonb)",
                        (name, self.proof, q, doc))
            return cur.fetchone()

        request_id, retry = self.db.transaction(work)
        if retry is not None:
            raise self._refused("help request", retry)
        return request_id

    def get_help_request(self, request_id: int, *, agent: str | None = None) -> dict | None:
        name = self._who(agent)

        def work(cur):
            cur.execute(
                "SELECT request_id, status, question, answer, sources, answered_at "
                "FROM fleet.get_help_request(%s, %s::bytea, %s)", (name, self.proof, int(request_id)))
            return cur.fetchone()

        row = self.db.transaction(work)
        return dict(row) if row else None
