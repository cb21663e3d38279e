"""One archival or restore of a table's day at a time, across processes and hosts.

A session advisory lock on (hashtext('fleet.archive'), hashtext('<table>:<day>')): the asset,
the CLI and a restore of the same day exclude each other, and a killed process's lock goes
with its session. A second caller waits a bounded time (the first one may be finishing), then
fails naming the backend that holds the lock, so an operator can tell a stuck archiver
(``pg_terminate_backend(pid)``) from one that is merely slow.
"""

from __future__ import annotations

from datetime import date

from agents_pipeline.core import advisory
from agents_pipeline.core.errors import ConflictError

LOCK_WAIT_S = 10.0   # default wait for a day's lock before failing
POLL_S = 0.2
_NAMESPACE = "fleet.archive"


def _key(table: str, day: date) -> str:
    return f"{table}:{day.isoformat()}"


def _try_lock(conn, key: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(hashtext(%s), hashtext(%s))", (_NAMESPACE, key))
        got = cur.fetchone()[0]
    conn.commit()
    return got


def lock_holder(conn, table: str, day: date) -> dict | None:
    """The session holding the day's lock: pid, application name and since when (None if free).

    pg_locks shows a two-int4-key advisory lock as classid = key1, objid = key2, objsubid = 2
    (both keys as oid, so a negative hash reads as its unsigned value: the ``::oid`` cast of the
    int4 does the same)."""
    with conn.cursor() as cur:
        cur.execute(
            """SELECT l.pid, a.application_name, a.backend_start, a.state
               FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
               WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
                 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
                 AND l.classid = hashtext(%s)::oid AND l.objid = hashtext(%s)::oid
                 AND l.pid <> pg_backend_pid()
               LIMIT 1""", (_NAMESPACE, _key(table, day)))
        row = cur.fetchone()
    conn.commit()
    if row is None:
        return None
    pid, app, since, state = row
    return {"pid": pid, "application_name": app, "backend_start": since, "state": state}


def lock_unit(conn, table: str, day: date, wait_s: float = LOCK_WAIT_S) -> None:
    """Takes the day's lock for ``conn``'s session, polling up to ``wait_s`` seconds; then
    raises ConflictError naming the pid of the session that holds it."""
    key = _key(table, day)
    if not advisory.wait_for(lambda: _try_lock(conn, key), wait_s, poll_s=POLL_S):
        raise ConflictError(_held_message(conn, table, day, wait_s), 0)


def _held_message(conn, table: str, day: date, wait_s: float) -> str:
    holder = lock_holder(conn, table, day)
    if holder is None:    # released between the last try and the look-up
        who = "another session (it has just released the lock: run again)"
    else:
        details = [f"application {holder['application_name']!r}" if holder["application_name"] else "",
                   f"connected since {holder['backend_start'].isoformat(timespec='seconds')}"
                   if holder["backend_start"] else "",
                   f"now {holder['state']}" if holder["state"] else ""]
        extra = ", ".join(d for d in details if d)
        who = f"PostgreSQL backend pid {holder['pid']}" + (f" ({extra})" if extra else "")
    return (f"{table} {day} is being archived or restored by another process: the day's lock is held by {who} "
            f"and was not released within {wait_s:g} s; wait for it to finish, or if it is stuck stop it "
            f"(SELECT pg_terminate_backend(<pid>)) and run again")
