"""Partition DDL that never stalls heartbeat writers.

CREATE TABLE ... PARTITION OF, plain DETACH and DROP of an attached partition all take an
ACCESS EXCLUSIVE lock on the parent, which queues behind any open insert and then blocks every
writer behind it. So partitions are created standalone and ATTACHed (SHARE UPDATE EXCLUSIVE on
the parent, compatible with inserts; a CHECK constraint matching the bounds skips the scan),
removed with DETACH ... CONCURRENTLY (FINALIZE when a killed run left it pending), and DROPped
only once detached, when no writer can reach them. Every statement that could wait on a lock
runs under a short lock_timeout and is retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import TypeVar

import psycopg2
from psycopg2 import sql

from agents_pipeline.core.errors import DatabaseError
from agents_pipeline.defs.retention.policy import table_spec

T = TypeVar("T")
LOCK_NOT_AVAILABLE = "55P03"


def partition_name(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def partition_ident(table: str, day: date) -> sql.Composable:
    return sql.Identifier("fleet", partition_name(table, day))


def bounds(day: date) -> tuple[str, str]:
    return f"{day.isoformat()} 00:00:00+00", f"{(day + timedelta(days=1)).isoformat()} 00:00:00+00"


def partition_state(cur, table: str, day: date) -> str:
    """'attached', 'detach_pending', 'detached' (a standalone table) or 'missing'."""
    cur.execute(
        """SELECT i.inhdetachpending
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
           WHERE n.nspname = 'fleet' AND c.relname = %s""",
        (partition_name(table, day),))
    row = cur.fetchone()
    if row is None:
        return "missing"
    if row[0] is None:
        return "detached"
    return "detach_pending" if row[0] else "attached"


def with_lock_retries(conn, work: Callable[[object], T], *, lock_timeout_ms: int = 50,
                      attempts: int = 40) -> T:
    """``work(cur)`` in its own transaction under a short lock_timeout, retried while it times out.

    A writer waits at most ``lock_timeout_ms`` behind a queued DDL statement; the DDL retries
    with a growing pause so that the writers get through in between.
    """
    delay = 0.02
    for attempt in range(attempts):
        try:
            with conn.cursor() as cur:
                if not conn.autocommit:
                    cur.execute("SET LOCAL lock_timeout = %s", (f"{lock_timeout_ms}ms",))
                else:
                    cur.execute("SET lock_timeout = %s", (f"{lock_timeout_ms}ms",))
                result = work(cur)
            if not conn.autocommit:
                conn.commit()
            return result
        except psycopg2.Error as exc:
            if not conn.autocommit:
                conn.rollback()
            if exc.pgcode != LOCK_NOT_AVAILABLE or attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 1.5, 1.0)
        finally:
            if conn.autocommit:
                with conn.cursor() as cur:
                    cur.execute("RESET lock_timeout")
    raise DatabaseError("unreachable")  # pragma: no cover


def attach_standalone(cur, table: str, day: date) -> None:
    """Attaches fleet.<table>_pYYYYMMDD (a standalone table) as the day's partition."""
    spec = table_spec(table)
    lo, hi = bounds(day)
    part = partition_ident(table, day)
    check = sql.Identifier(partition_name(table, day) + "_bounds")
    cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL AND {} >= {} AND {} < {})").format(
        part, check, sql.Identifier(spec.time_column), sql.Identifier(spec.time_column), sql.Literal(lo),
        sql.Identifier(spec.time_column), sql.Literal(hi)))
    cur.execute(sql.SQL("ALTER TABLE {} ATTACH PARTITION {} FOR VALUES FROM ({}) TO ({})").format(
        sql.Identifier("fleet", table), part, sql.Literal(lo), sql.Literal(hi)))
    cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(part, check))


def create_standalone(cur, table: str, day: date) -> None:
    cur.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)").format(
        partition_ident(table, day), sql.Identifier("fleet", table)))


def ensure_future_partitions(conn, table: str, first: date, last: date) -> int:
    """Creates the missing daily partitions in [first, last] without blocking writers."""
    if not table_spec(table).partitioned:
        raise ValueError(f"{table} is not partitioned")
    created = 0
    day = first
    while day <= last:
        with conn.cursor() as cur:
            state = partition_state(cur, table, day)
        conn.commit()
        if state == "missing":
            def work(cur, day=day):
                if partition_state(cur, table, day) != "missing":
                    return 0
                create_standalone(cur, table, day)
                attach_standalone(cur, table, day)
                return 1

            created += with_lock_retries(conn, work, lock_timeout_ms=100)
        day += timedelta(days=1)
    return created


def frozen_name(table: str, day: date) -> sql.Identifier:
    return sql.Identifier(partition_name(table, day) + "_archiving")


def freeze_partition(conn, table: str, day: date) -> None:
    """Refuses any new row in the day's partition (CHECK (false) NOT VALID: existing rows stay).

    Locks only the old partition, which today's writers never touch.
    """
    def work(cur):
        cur.execute("SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s",
                    (f"fleet.{partition_name(table, day)}", partition_name(table, day) + "_archiving"))
        if cur.fetchone() is None:
            cur.execute(sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK (false) NOT VALID").format(
                partition_ident(table, day), frozen_name(table, day)))

    # A long report over every partition holds it; waiting in 50 ms slices never stalls others.
    with_lock_retries(conn, work, lock_timeout_ms=50, attempts=400)


def unfreeze_partition(cur, table: str, day: date) -> None:
    cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
        partition_ident(table, day), frozen_name(table, day)))


def detach_concurrently(autocommit_conn, table: str, day: date) -> None:
    """DETACH ... CONCURRENTLY (or FINALIZE a pending one): writers keep inserting meanwhile."""
    def work(cur):
        # A parent allows one pending detach at a time: finish any other day's first (a run
        # killed mid-detach), or this one would be refused.
        cur.execute("""SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                       WHERE i.inhparent = %s::regclass AND i.inhdetachpending AND c.relname <> %s""",
                    (f"fleet.{table}", partition_name(table, day)))
        for (other,) in cur.fetchall():
            cur.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(
                sql.Identifier("fleet", table), sql.Identifier("fleet", other)))
        state = partition_state(cur, table, day)
        if state == "attached":
            cur.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} CONCURRENTLY").format(
                sql.Identifier("fleet", table), partition_ident(table, day)))
        elif state == "detach_pending":
            cur.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(
                sql.Identifier("fleet", table), partition_ident(table, day)))

    # The second phase waits for transactions that still see the partition; writers are not
    # blocked by that wait, so the timeout here is long.
    with_lock_retries(autocommit_conn, work, lock_timeout_ms=5000, attempts=20)


def drop_detached(conn, table: str, day: date) -> None:
    """Drops the day's table once it is no partition any more (its lock reaches no writer)."""
    def work(cur):
        state = partition_state(cur, table, day)
        if state in ("attached", "detach_pending"):
            raise DatabaseError(f"{partition_name(table, day)} is still a partition; detach it first")
        if state == "detached":
            cur.execute(sql.SQL("DROP TABLE {}").format(partition_ident(table, day)))

    with_lock_retries(conn, work, lock_timeout_ms=50)
