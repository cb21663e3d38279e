"""Session advisory locks taken with a bounded wait, naming who holds them when it runs out.

``pg_advisory_lock`` waits for ever, so a session that holds a key (a stuck migrator, or any
login that could take it) would stall ``db migrate`` without a word. Polling
``pg_try_advisory_lock`` bounds the wait and lets the error say which process to look at.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from agents_pipeline.core.errors import LockedError

POLL_S = 0.2


def wait_for(try_lock: Callable[[], bool], wait_s: float, poll_s: float = POLL_S) -> bool:
    """Calls ``try_lock`` (a pg_try_advisory_lock of the caller's) until it succeeds or
    ``wait_s`` seconds pass; True when the lock was taken. Each caller words its own error."""
    deadline = time.monotonic() + max(wait_s, 0.0)
    while not try_lock():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(poll_s, left))
    return True


def holder_pid(cur, key: int) -> int | None:
    """The pid holding the one-bigint advisory lock ``key`` (pg_locks splits it in two int4)."""
    cur.execute(
        """SELECT min(pid) FROM pg_locks
           WHERE locktype = 'advisory' AND granted AND objsubid = 1
             AND classid = ((%s::bigint >> 32) & 4294967295)::oid AND objid = (%s::bigint & 4294967295)::oid""",
        (key, key),
    )
    row = cur.fetchone()
    return row[0] if row else None


@contextmanager
def session_lock(cur, key: int, *, what: str, wait_s: float = 30.0) -> Iterator[None]:
    """Holds advisory lock ``key`` for the block; LockedError after ``wait_s`` seconds."""
    def try_lock() -> bool:
        cur.execute("SELECT pg_try_advisory_lock(%s)", (key,))
        return cur.fetchone()[0]

    if not wait_for(try_lock, wait_s):
        pid = holder_pid(cur, key)
        who = f"process {pid} (see pg_stat_activity)" if pid else "another session"
        raise LockedError(f"{what} is locked by {who}; gave up after {wait_s:g} s")
    try:
        yield
    finally:
        cur.execute("SELECT pg_advisory_unlock(%s)", (key,))
