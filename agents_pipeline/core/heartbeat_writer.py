"""Merges concurrent heartbeat calls into one statement (group commit on the client).

Fifty threads each running their own INSERT are held back by the GIL and per-call round
trips (measured here: 0.25 to 0.4 of pgbench's rate). Instead every call queues its item and
waits; one flusher thread sends everything queued as one ``fleet.record_heartbeats`` call and
commits, then hands each caller its own result. A lone caller is sent at once (no linger), so
a single heartbeat pays no extra latency; under load batches form by themselves.

GroupCommitWriter is that mechanism for any batched statement: the HTTP API's ping writer
(agents_pipeline.api) runs fleet.record_pings through it with a few flushers over a small pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from agents_pipeline.core import errors
from agents_pipeline.core.connection import Database

if TYPE_CHECKING:  # asyncio is loaded by async callers only: a shell heartbeat does not pay for it
    import asyncio

MAX_BATCH = 5000
T = TypeVar("T")
R = TypeVar("R")
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


class GroupCommitWriter(Generic[T, R]):
    """Queues items from many threads and sends them in batches through ``send``, which returns
    one result (or exception) per item, in order. ``flushers`` threads each take whatever is
    queued (at most ``max_batch`` items) while the others' statements are in flight, so a small
    pool of connections carries any number of callers. The threads start on the first item and
    then sleep on a condition while the queue is empty: an idle writer costs nothing.

    Threads wait on a ``concurrent.futures.Future`` (``submit``); coroutines on an asyncio future
    (``submit_async``), settled for a whole batch with one call into their event loop instead of
    one wake-up per item (the HTTP API's pings: a fifth of its CPU per ping went to those)."""

    def __init__(self, send: Callable[[list[T]], list[R | BaseException]], *, flushers: int = 1,
                 max_batch: int = MAX_BATCH, name: str = "group-commit") -> None:
        self._send = send
        self._flushers = flushers
        self._max_batch = max_batch
        self._name = name
        self._pending: list[tuple[T, Future | asyncio.Future]] = []
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def submit(self, item: T) -> Future:
        return self.submit_many([item])[0]

    def submit_many(self, items: list[T]) -> list[Future]:
        """Queues the items together, so they go in one statement unless the queue is full."""
        futures: list[Future] = [Future() for _ in items]
        self._queue(list(zip(items, futures, strict=True)))
        return futures

    def submit_async(self, items: list[T]) -> list[asyncio.Future]:
        """As submit_many, from a coroutine: futures of the running event loop."""
        import asyncio

        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self._queue(list(zip(items, futures, strict=True)))
        return futures

    def _queue(self, entries: list[tuple[T, Future | asyncio.Future]]) -> None:
        with self._cond:
            if self._stopping:
                raise errors.AgentsPipelineError(f"{self._name} writer is closed")
            self._pending.extend(entries)
            if not self._threads:
                for i in range(self._flushers):
                    thread = threading.Thread(target=self._run, name=f"{self._name}-{i}", daemon=True)
                    thread.start()
                    self._threads.append(thread)
            self._cond.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Sends what is queued, then stops the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending and self._stopping:
                    return
                batch, self._pending = self._pending[:self._max_batch], self._pending[self._max_batch:]
                if self._pending:
                    self._cond.notify()  # another flusher may take the rest now
            try:
                results: list = self._send([item for item, _ in batch])
            except BaseException as exc:  # the whole batch failed after retries
                results = [exc] * len(batch)
            by_loop: dict[Any, list] = {}
            for (_, future), result in zip(batch, results, strict=True):
                if not isinstance(future, Future):      # an asyncio future (submit_async)
                    by_loop.setdefault(future.get_loop(), []).append((future, result))
                elif isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
            for loop, settled in by_loop.items():
                try:
                    loop.call_soon_threadsafe(_settle, settled)
                except RuntimeError:  # the loop has closed: nobody waits any more
                    pass


def _settle(settled: list[tuple[asyncio.Future, object]]) -> None:
    """In the event loop: each future gets its result, unless its caller gave up on it."""
    for future, result in settled:
        if future.done():
            continue
        if isinstance(result, BaseException):
            future.set_exception(result)
        else:
            future.set_result(result)


class HeartbeatWriter(GroupCommitWriter[HeartbeatItem, datetime]):
    """SharedState's writer: heartbeats on the connections' own proof, one flusher."""

    def __init__(self, db: Database) -> None:
        super().__init__(lambda items: send_batch(db, items), name="heartbeat-writer")
