"""psycopg2 connections for the agent side: a small blocking pool and a retrying transaction.

psycopg2.pool is not used because its pools raise instead of waiting when exhausted and
never check a connection that the server dropped; psycopg_pool is for psycopg 3. What is
needed here is small: a LIFO of idle connections under a semaphore, broken ones discarded.

Transient failures (connection lost, server restarting, deadlock, serialization) are retried
with exponential backoff inside a bounded window, so a database restart does not lose a write
or raise to the agent; anything else is mapped to a typed error at once.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from agents_pipeline.core import errors
from agents_pipeline.core.dsn import connect_kwargs, mask_url
from agents_pipeline.core.settings import retry_window_s

log = logging.getLogger(__name__)
T = TypeVar("T")

_TRANSIENT_CODES = {"57P01", "57P02", "57P03", "40001", "40P01", "53300", "55P03"}
_AUTH_CODES = {"28P01", "28000", "42501"}
_NO_PARTITION = "no partition of relation"
_AGENT_LOGIN = re.compile(r"[a-z_][a-z0-9_]*_a\d+_\d+")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, psycopg2.InterfaceError):
        return True
    if isinstance(exc, psycopg2.Error):
        code = exc.pgcode or ""
        if not code:
            # Every error the server sends has a SQLSTATE; one without is libpq's own: the
            # connection is gone. A server that crashed mid-commit surfaces as a plain
            # DatabaseError ("server closed the connection unexpectedly"), not an OperationalError.
            return isinstance(exc, psycopg2.OperationalError) or (
                type(exc) is psycopg2.DatabaseError and "connection" in str(exc))
        return code.startswith("08") or code in _TRANSIENT_CODES
    return False


def translate(exc: psycopg2.Error) -> errors.AgentsPipelineError:
    """A typed error carrying the server's first line (which never holds the URL)."""
    code = exc.pgcode or ""
    text = (getattr(exc.diag, "message_primary", None) or str(exc)).strip().splitlines()[0]
    if code == "P0002":
        return errors.NotFoundError(text)
    if code in _AUTH_CODES:
        return errors.AuthError(text)
    if code.startswith(("22", "23")) or code in {"54000", "P0001"}:
        return errors.ValidationError(text)
    return errors.DatabaseError(f"database error {code or ''}: {text}".replace("  ", " "))


class ConnectionPool:
    """At most ``maxconn`` connections; callers wait for a free one."""

    def __init__(self, url: str, *, maxconn: int = 8, application_name: str = "agents_pipeline",
                 session_settings: dict[str, str] | None = None, password: str | None = None) -> None:
        self.url = url
        self.display_url = mask_url(url)
        self._kwargs = connect_kwargs(url)
        self._kwargs.setdefault("connect_timeout", 5)
        self._kwargs.setdefault("application_name", application_name)
        # An agent's own login (fleet.ensure_agent_login names it <prefix>_a<db oid>_<agent id>)
        # has the agent's token as its password, sent as SCRAM; any other login keeps the URL's,
        # PGPASSWORD or .pgpass.
        if password is not None and _AGENT_LOGIN.fullmatch(str(self._kwargs.get("user") or "")):
            self._kwargs.setdefault("password", password)
        # Times come back in UTC whatever the server's zone, so what agents and the CLI print
        # compares across hosts.
        self._kwargs["options"] = f"{self._kwargs.get('options', '')} -c TimeZone=UTC".strip()
        # Settings sent in the startup packet, not as statements: no log_statement, no
        # pg_stat_activity ever shows them (the agent's token proof travels this way).
        for key, value in (session_settings or {}).items():
            self._kwargs["options"] += f" -c {key}={value}"
        self._idle: list[psycopg2.extensions.connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(maxconn)
        self._closed = False

    def _connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(**self._kwargs)
        conn.autocommit = False
        return conn

    def get(self, timeout: float = 30.0) -> psycopg2.extensions.connection:
        if self._closed:
            raise errors.AgentsPipelineError("connection pool is closed")
        if not self._slots.acquire(timeout=timeout):
            raise errors.DatabaseUnavailableError(f"no free database connection after {timeout:.0f} s")
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is not None and not conn.closed:
            return conn
        try:
            return self._connect()
        except BaseException:
            self._slots.release()
            raise

    def put(self, conn: psycopg2.extensions.connection, *, broken: bool = False) -> None:
        try:
            if broken or conn.closed or self._closed:
                conn.close()
            else:
                if conn.status != psycopg2.extensions.STATUS_READY:
                    conn.rollback()
                with self._lock:
                    self._idle.append(conn)
        except psycopg2.Error:
            conn.close()
        finally:
            self._slots.release()

    def close(self) -> None:
        self._closed = True
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Database:
    """Runs units of work in transactions, retrying transient failures within a window."""

    def __init__(self, url: str, *, maxconn: int = 8, retry_window: float | None = None,
                 application_name: str = "agents_pipeline", session_settings: dict[str, str] | None = None,
                 password: str | None = None) -> None:
        self.pool = ConnectionPool(url, maxconn=maxconn, application_name=application_name,
                                   session_settings=session_settings, password=password)
        self.retry_window = retry_window_s() if retry_window is None else retry_window

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[psycopg2.extensions.connection]:
        conn = self.pool.get()
        broken = False
        try:
            yield conn
        except BaseException as exc:
            broken = is_transient(exc) or conn.closed != 0
            raise
        finally:
            self.pool.put(conn, broken=broken)

    def call(self, work: Callable[[psycopg2.extensions.cursor], T]) -> T:
        """``work(cursor)`` that runs exactly one statement, in autocommit: the statement is its
        own transaction, so the call costs one round trip instead of three (BEGIN, the statement,
        COMMIT). The durability is the same (the server answers after its commit is flushed), and
        so are the retries. For the agent functions, each of which is one atomic statement. Rows
        come back as plain tuples: a DictCursor's rows cost a claim + complete batch of 10 tasks
        0.15 ms of client CPU, an eighth of the whole call (issue #18's queue benchmark)."""
        return self.transaction(work, single_statement=True)

    def transaction(self, work: Callable[[psycopg2.extensions.cursor], T], *, single_statement: bool = False) -> T:
        """``work(cursor)`` in one transaction: committed, or retried from scratch, or raised."""
        deadline = time.monotonic() + self.retry_window
        delay = 0.05
        partitions_made = False
        while True:
            try:
                with self.connection() as conn:
                    conn.autocommit = single_statement
                    try:
                        factory = None if single_statement else psycopg2.extras.DictCursor
                        with conn.cursor(cursor_factory=factory) as cur:
                            result = work(cur)
                        if not single_statement:
                            conn.commit()
                        return result
                    except BaseException:
                        if not conn.closed and not single_statement:
                            conn.rollback()
                        raise
                    finally:
                        if single_statement and not conn.closed:
                            conn.autocommit = False
            except psycopg2.Error as exc:
                if exc.pgcode == "23514" and _NO_PARTITION in str(exc) and not partitions_made:
                    partitions_made = True
                    self._ensure_partitions()
                    continue
                if not is_transient(exc):
                    raise translate(exc) from None
                now = time.monotonic()
                if now >= deadline:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise errors.DatabaseUnavailableError(
                        f"database {self.pool.display_url} unavailable for {self.retry_window:.0f} s: {reason}"
                    ) from None
                log.warning("database call failed (%s); retrying", type(exc).__name__)
                time.sleep(min(delay * (0.5 + random.random()), max(0.0, deadline - now)))
                delay = min(delay * 2, 2.0)

    def _ensure_partitions(self) -> None:
        def work(cur):
            cur.execute("SET LOCAL lock_timeout = '2s'")
            cur.execute("SELECT fleet.ensure_current_partitions()")

        self.transaction(work)
