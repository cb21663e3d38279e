"""Merges concurrent heartbeat calls into one statement (group commit on the client).

Fifty threads each running their own INSERT are held back by the GIL and per-call round
trips (measured here: 0.25 to 0.4 of pgbench's rate). Instead every call queues its item and
waits; one flusher thread sends everything queued as one ``fleet.record_heartbeats`` call and
commits, then hands each caller its own result. A lone caller is sent at once (no linger), so
a single heartbeat pays no extra latency; under load batches form by themselves.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime

from agents_pipeline.core import errors
from agents_pipeline.core.connection import Database

MAX_BATCH = 5000
# The proofs are NULL: each item stands on the proof the connection presented at its start
# (SharedState's session setting), so no token hash is in the statement.
SQL = """SELECT ord, agent_id, received_at, error, retry_after_s FROM fleet.record_heartbeats(
    %s::text[], NULL::bytea[], %s::text[], %s::timestamptz[], %s::text[], %s::jsonb[])"""


@dataclass(frozen=True)
class HeartbeatItem:
    agent: str
    kind: str
    sent_at: datetime | None
    message: str | None
    payload: str | None  # JSON text


def error_for(text: str, retry_after_s: float | None = None) -> errors.AgentsPipelineError:
    if text.startswith("unknown agent"):
        return errors.NotFoundError(text)
    if text.startswith("token refused"):
        return errors.AuthError(text)
    if text.startswith("rate limited"):
        return errors.RateLimitedError(f"{text}; retry after {retry_after_s or 0:.1f} s", retry_after_s)
    if text.startswith("agent busy"):
        return errors.LockedError(text)
    return errors.ValidationError(text)


def send_batch(db: Database, items: list[HeartbeatItem]) -> list[datetime | errors.AgentsPipelineError]:
    """One statement, one transaction; per item the receive time or the reason it was refused."""
    columns = (
        [i.agent for i in items], [i.kind for i in items],
        [i.sent_at for i in items], [i.message for i in items], [i.payload for i in items],
    )

    def work(cur):
        cur.execute(SQL, columns)
        return cur.fetchall()

    rows = db.transaction(work)
    return [row[2] if row[3] is None else error_for(row[3], row[4]) for row in rows]


class HeartbeatWriter:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[tuple[HeartbeatItem, Future]] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, item: HeartbeatItem) -> Future:
        future: Future = Future()
        with self._cond:
            if self._stopping:
                raise errors.AgentsPipelineError("SharedState is closed")
            self._pending.append((item, future))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="heartbeat-writer", daemon=True)
                self._thread.start()
            self._cond.notify()
        return future

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending and self._stopping:
                    return
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = send_batch(self._db, [item for item, _ in batch])
            except BaseException as exc:  # the whole batch failed after retries
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
