"""Tasks handed out by capability: the agent side of the task queue (sql/0014, issue #18).

A mixin of SharedState, so an agent's one connection pool and token serve tasks too. Each call is
one ``fleet.*`` function, which authenticates the agent, checks the caps and draws on its 'tasks'
rate bucket; the checks here only fail earlier with a clearer message. A claim hands back
:class:`Task` objects carrying their attempt id; ``complete``, ``fail`` and ``extend`` present
it, so an attempt that lost its task (lease run out and claimed again, agent marked down) gets
LeaseLostError instead of reporting twice. Imports psycopg2 only (through the connection module).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents_pipeline.core import validation
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import LeaseLostError, RateLimitedError, ValidationError

MAX_PAYLOAD = 256 * 1024
MAX_BATCH_BYTES = 8 * 1024 * 1024
MAX_ERROR = 8192
MAX_LEASE_S = 3600.0
MAX_RETRY_IN_S = 7 * 86400.0
_LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}")


@dataclass(frozen=True)
class Task:
    """One claimed attempt of a task. ``agent`` is the claimer, so complete(task) acts for it."""

    task_id: int
    attempt_id: str
    kind: str
    capability: str | None
    priority: int
    payload: Any
    attempt: int            # 1 for the first claim
    max_attempts: int
    lease_until: datetime
    submitted_by: str | None
    created_at: datetime
    agent: str


@dataclass(frozen=True)
class TaskStatus:
    """A task as its submitter or holder reads it (SharedState.get_task)."""

    task_id: int
    kind: str
    capability: str | None
    state: str              # ready, claimed, done, failed, dead
    priority: int
    attempts: int
    max_attempts: int
    run_after: datetime
    result: Any
    last_error: str | None
    submitted_by: str | None
    claimed_by: str | None
    created_at: datetime
    finished_at: datetime | None


def label(value: Any, field: str) -> str:
    """A task kind or capability: 1-200 letters, digits or _ . : / - (they reach alerts and the UI)."""
    text = validation.text(value, field, max_len=200, required=True)
    assert text is not None
    if not _LABEL.fullmatch(text):
        raise ValidationError(f"{field} must be 1 to 200 letters, digits or _ . : / -, got {text[:60]!r}")
    return text


def _seconds(value: float | None, field: str, low: float, high: float, *, open_low: bool = False) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field} must be a number of seconds, got {type(value).__name__}")
    if value != value or (value <= low if open_low else value < low) or value > high:
        bound = "more than" if open_low else "at least"
        raise ValidationError(f"{field} must be {bound} {low:g} and at most {high:g} s, got {value}")
    return float(value)


CLAIM_SQL = ("SELECT task_id, attempt_id::text, kind, capability, priority, payload, attempt, max_attempts, "
             "lease_until, submitted_by, created_at, retry_after_s "
             "FROM fleet.claim_tasks(%s, %s::bytea, %s::text[], %s, make_interval(secs => %s))")
COMPLETE_AND_CLAIM_SQL = (
    "SELECT task_id, attempt_id::text, kind, capability, priority, payload, attempt, max_attempts, "
    "lease_until, submitted_by, created_at, retry_after_s, lost "
    "FROM fleet.complete_and_claim(%s, %s::bytea, %s::bigint[], %s::uuid[], %s::jsonb[], %s::text[], %s, "
    "make_interval(secs => %s))")


def _results(done: Iterable[tuple[Task, Any]], what: str) -> list[tuple[Task, str | None]]:
    """Each task with its result as JSON (checked as complete() checks one), at most 1,000."""
    pairs = [(task, validation.document(result, "task result", max_bytes=MAX_PAYLOAD)) for task, result in done]
    if len(pairs) > 1000:
        raise ValidationError(f"{what} at most 1000 tasks, got {len(pairs)}")
    return pairs


def _submit_args(kind: str, capability: str | None, priority: int, max_attempts: int,
                 run_after: datetime | None) -> tuple[str, str | None]:
    """The checks submit_task and submit_tasks share; returns the kind and capability."""
    if isinstance(priority, bool) or not isinstance(priority, int) or not -1000 <= priority <= 1000:
        raise ValidationError(f"priority must be a whole number from -1000 to 1000, got {priority!r}")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 100:
        raise ValidationError(f"max_attempts must be a whole number from 1 to 100, got {max_attempts!r}")
    if run_after is not None and (not isinstance(run_after, datetime) or run_after.tzinfo is None):
        raise ValidationError("run_after must be a datetime with a time zone")
    return label(kind, "task kind"), label(capability, "capability") if capability is not None else None


def _dedupe_key(value: str | None) -> str | None:
    key = validation.name(value, "dedupe key") if value is not None else None
    if key is not None and len(key.encode("utf-8")) > 200:
        raise ValidationError(f"dedupe key is {len(key.encode('utf-8'))} bytes, more than 200")
    return key


def _claim_args(capabilities: Iterable[str] | None, n: int, lease_s: float) -> tuple[list[str] | None, float | None]:
    caps = None if capabilities is None else [label(c, "capability") for c in capabilities]
    if caps is not None and len(caps) > 100:
        raise ValidationError(f"a claim names at most 100 capabilities, got {len(caps)}")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 1000:
        raise ValidationError(f"a claim takes 1 to 1000 tasks, got {n!r}")
    return caps, _seconds(lease_s, "lease_s", 0, MAX_LEASE_S, open_low=True)


class TaskQueue:
    """The task calls of SharedState; expects ``db``, ``_who`` and ``_refused`` from it."""

    db: Database
    # The token's proof passed to each call: None (NULL) for SharedState, whose connections carry
    # it as a session setting; the HTTP API, sharing one login among agents, passes each one's.
    proof: bytes | None = None
    _who: Callable[[str | None], str]
    _refused: Callable[[str, float | None], RateLimitedError]

    def submit_task(self, kind: str, payload: Any = None, *, capability: str | None = None, priority: int = 0,
                    run_after: datetime | None = None, max_attempts: int = 5, dedupe_key: str | None = None,
                    agent: str | None = None) -> int:
        """Queues a task; returns its id. With ``dedupe_key`` it is idempotent per submitting agent:
        the same key returns the first task's id and queues nothing. ``capability`` None: any agent
        may claim it. Higher ``priority`` goes first; ``run_after`` holds it back until then."""
        name = self._who(agent)
        kind, cap = _submit_args(kind, capability, priority, max_attempts, run_after)
        doc = validation.document(payload if payload is not None else {}, "task payload", max_bytes=MAX_PAYLOAD)
        key = _dedupe_key(dedupe_key)

        def work(cur):
            cur.execute("SELECT task_id, retry_after_s FROM fleet.submit_task(%s, %s::bytea, %s, %s::jsonb, %s, %s, %s, %s, %s)",
                        (name, self.proof, kind, doc, cap, priority, run_after, max_attempts, key))
            return cur.fetchone()

        task_id, retry = self.db.call(work)
        if retry is not None:
            raise self._refused("task submission", retry)
        return task_id

    def submit_tasks(self, kind: str, payloads: Iterable[Any], *, capability: str | None = None, priority: int = 0,
                     run_after: datetime | None = None, max_attempts: int = 5,
                     dedupe_keys: Iterable[str | None] | None = None, agent: str | None = None) -> list[int]:
        """Queues 1 to 1,000 tasks of one kind in one statement and one commit (``fleet.submit_tasks``);
        returns their ids in the payloads' order. ``dedupe_keys``, one per payload (None for none),
        makes each idempotent as submit_task's key does. All or nothing: a rate-limit refusal
        (the batch draws one token per new task) queues none of them."""
        name = self._who(agent)
        kind, cap = _submit_args(kind, capability, priority, max_attempts, run_after)
        payloads = list(payloads)
        if not 1 <= len(payloads) <= 1000:   # counted before any is serialised
            raise ValidationError(f"submit_tasks takes 1 to 1000 payloads, got {len(payloads)}")
        docs = [validation.document(p if p is not None else {}, "task payload", max_bytes=MAX_PAYLOAD) for p in payloads]
        keys = None if dedupe_keys is None else [_dedupe_key(k) for k in dedupe_keys]
        if keys is not None and len(keys) != len(docs):
            raise ValidationError(f"submit_tasks: {len(docs)} payloads and {len(keys)} dedupe keys; they must pair up")
        if sum(len(d.encode("utf-8")) for d in docs) > MAX_BATCH_BYTES:
            raise ValidationError("task payloads larger than 8 MiB in one call")

        def work(cur):
            cur.execute("SELECT task_id, retry_after_s FROM fleet.submit_tasks(%s, %s::bytea, %s, %s::jsonb[], %s, %s, "
                        "%s, %s, %s::text[])", (name, self.proof, kind, docs, cap, priority, run_after, max_attempts, keys))
            return cur.fetchall()

        rows = self.db.call(work)
        if rows[0][0] is None:
            raise self._refused("task submission", rows[0][1])
        return [row[0] for row in rows]

    def claim_tasks(self, capabilities: Iterable[str] | None = None, n: int = 1, lease_s: float = 60.0, *,
                    agent: str | None = None) -> list[Task]:
        """Claims up to ``n`` ready tasks whose capability is one of ``capabilities`` (None: every
        capability an operator granted this agent) or that need none; highest priority, then
        oldest, first. The agent's heartbeats renew the lease; past it, another agent may take the
        task. Complete or fail each task, presenting it (its attempt id) back."""
        name = self._who(agent)
        caps, lease = _claim_args(capabilities, n, lease_s)

        def work(cur):
            cur.execute(CLAIM_SQL, (name, self.proof, caps, n, lease))
            return cur.fetchall()

        rows = self.db.call(work)
        if rows and rows[0][0] is None:
            raise self._refused("task claim", rows[0][11])
        return [Task(*row[:11], agent=name) for row in rows]

    def complete(self, task: Task, result: Any = None) -> None:
        """Stores the task's result (at most 256 KiB of JSON). Completing the same attempt twice is
        harmless; LeaseLostError when the attempt lost its task (its lease ran out and another
        agent claimed it, or this agent was marked down)."""
        doc = validation.document(result, "task result", max_bytes=MAX_PAYLOAD)

        def work(cur):
            cur.execute("SELECT fleet.complete_task(%s, %s::bytea, %s, %s::uuid, %s::jsonb)",
                        (task.agent, self.proof, task.task_id, task.attempt_id, doc))
            return cur.fetchone()[0]

        if not self.db.call(work):
            raise self._lost(task)

    def complete_many(self, done: Iterable[tuple[Task, Any]]) -> list[Task]:
        """Completes several attempts in one transaction (one commit, where a commit per task is most
        of what completing costs with durable commits) and one statement per agent
        (``fleet.complete_tasks``); returns those that were no longer held, as complete() would
        have raised LeaseLostError for each. At most 1,000 at a time."""
        pairs = _results(done, "complete_many takes")
        by_agent: dict[str, list[tuple[Task, str | None]]] = {}
        for task, doc in pairs:
            by_agent.setdefault(task.agent, []).append((task, doc))

        def work(cur):
            lost: set[int] = set()
            for agent, items in by_agent.items():
                cur.execute("SELECT fleet.complete_tasks(%s, %s::bytea, %s::bigint[], %s::uuid[], %s::jsonb[])",
                            (agent, self.proof, [t.task_id for t, _ in items], [t.attempt_id for t, _ in items],
                             [d for _, d in items]))
                lost.update(row[0] for row in cur.fetchall())
            return [task for task, _ in pairs if task.task_id in lost]

        if not pairs:
            return []
        return self.db.call(work) if len(by_agent) == 1 else self.db.transaction(work)

    def complete_and_claim(self, done: Iterable[tuple[Task, Any]], capabilities: Iterable[str] | None = None,
                           n: int = 1, lease_s: float = 60.0) -> tuple[list[Task], list[Task]]:
        """A worker's loop step in one statement and one commit (``fleet.complete_and_claim``):
        completes ``done`` (this agent's attempts, as complete_many) and claims up to ``n`` more
        (as claim_tasks). Returns (the attempts that lost their task, the tasks claimed). On a
        rate-limit refusal of the claim the completions are stored and RateLimitedError is raised."""
        pairs = _results(done, "complete_and_claim completes")
        name = self._who(None)
        if any(task.agent != name for task, _ in pairs):
            raise ValidationError(f"complete_and_claim completes {name}'s own attempts only")
        caps, lease = _claim_args(capabilities, n, lease_s)

        def work(cur):
            cur.execute(COMPLETE_AND_CLAIM_SQL, (
                name, self.proof, [t.task_id for t, _ in pairs], [t.attempt_id for t, _ in pairs],
                [d for _, d in pairs], caps, n, lease))
            return cur.fetchall()

        rows = self.db.call(work)
        lost_ids = {row[0] for row in rows if row[12]}
        claimed = [row for row in rows if not row[12]]
        if claimed and claimed[0][0] is None:
            raise self._refused("task claim", claimed[0][11])
        return [t for t, _ in pairs if t.task_id in lost_ids], [Task(*row[:11], agent=name) for row in claimed]

    def fail_task(self, task: Task, error: Any = None, retry_in: float | None = None, *,
                  permanent: bool = False) -> str:
        """Fails this attempt: the task runs again after ``retry_in`` seconds (default: a backoff of
        5 s doubled per attempt, at most an hour), is dead-lettered once its attempts are used up,
        or with ``permanent`` ends as 'failed'. Returns the task's new state."""
        raw = error if error is None or isinstance(error, str) else f"{type(error).__name__}: {error}"
        if raw is not None:   # a traceback may run long: its first 8 KiB are kept
            raw = raw.encode("utf-8", "replace")[:MAX_ERROR].decode("utf-8", "ignore")
        text = validation.text(raw, "task error", max_len=MAX_ERROR)
        delay = _seconds(retry_in, "retry_in", 0, MAX_RETRY_IN_S)

        def work(cur):
            cur.execute("SELECT fleet.fail_task(%s, %s::bytea, %s, %s::uuid, %s, make_interval(secs => %s), %s)",
                        (task.agent, self.proof, task.task_id, task.attempt_id, text, delay, bool(permanent)))
            return cur.fetchone()[0]

        state = self.db.call(work)
        if state is None:
            raise self._lost(task)
        return state

    def extend(self, task: Task, lease_s: float | None = None) -> datetime:
        """Renews the task's lease (``lease_s`` from now, default the lease it was claimed with);
        returns the new end. Heartbeats renew leases anyway: this is for a lease shorter than the
        time between two heartbeats."""
        lease = _seconds(lease_s, "lease_s", 0, MAX_LEASE_S, open_low=True)

        def work(cur):
            cur.execute("SELECT lease_until, retry_after_s FROM fleet.extend_task(%s, %s::bytea, %s, %s::uuid, "
                        "make_interval(secs => %s))", (task.agent, self.proof, task.task_id, task.attempt_id, lease))
            return cur.fetchone()

        until, retry = self.db.call(work)
        if retry is not None:
            raise self._refused("lease extension", retry)
        if until is None:
            raise self._lost(task)
        return until

    def release(self, task: Task) -> None:
        """Gives back a task this agent claimed but has not started: ready at once for another
        agent, and the claim does not count as an attempt. LeaseLostError when it is no longer held."""

        def work(cur):
            cur.execute("SELECT fleet.release_task(%s, %s::bytea, %s, %s::uuid)", (task.agent, self.proof, task.task_id, task.attempt_id))
            return cur.fetchone()[0]

        if not self.db.call(work):
            raise self._lost(task)

    def get_task(self, task_id: int, *, agent: str | None = None) -> TaskStatus | None:
        """A task this agent submitted or holds (held last); None for any other, as for none."""
        name = self._who(agent)

        def work(cur):
            cur.execute("SELECT * FROM fleet.get_task(%s, %s::bytea, %s)", (name, self.proof, int(task_id)))
            return cur.fetchone()

        row = self.db.call(work)
        return None if row is None else TaskStatus(*row)

    @staticmethod
    def _lost(task: Task) -> LeaseLostError:
        return LeaseLostError(f"task {task.task_id} (attempt {task.attempt}) is no longer held by {task.agent!r}: "
                              "its lease ran out and it was claimed again, or the agent was marked down")
