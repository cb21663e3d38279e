"""The API's way to the database: its own login, a small pool, and group-commit writers.

Concurrent pings are merged into one ``fleet.record_pings`` statement by core's
GroupCommitWriter (the mechanism SharedState's heartbeats use) with PING_FLUSHERS threads over a
pool of as many connections; bearer-token batches go the same way through
``fleet.record_heartbeats``, each item with its token's proof. A caller's future resolves only
after the transaction committed, so an acknowledged ping is stored; while the database is away,
calls fail after AGENTS_PIPELINE_API_DB_WAIT_S with DatabaseUnavailableError, which the routes answer with 503.

Before its first statement the backend checks that its login is not an operator: the API must
never act for an agent without that agent's key or token.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime

from agents_pipeline.api import config
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.heartbeat_writer import GroupCommitWriter

log = logging.getLogger(__name__)

# Only what the answer needs: a ping's 200 carries no time, so none is parsed per row.
PING_SQL = """SELECT error, retry_after_s
              FROM fleet.record_pings(%s::bytea[], %s::text[], %s::text[], %s::bigint[])"""
BATCH_SQL = """SELECT ord, received_at, error, retry_after_s FROM fleet.record_heartbeats(
    %s::text[], %s::bytea[], %s::text[], %s::timestamptz[], %s::text[], %s::jsonb[])"""
# An operator (may update the registry) or a superuser may act for any agent without a token.
LOGIN_CHECK = """SELECT session_user, r.rolsuper OR has_table_privilege(session_user, 'fleet.agents', 'SELECT')
                        OR has_table_privilege(session_user, 'fleet.agents', 'UPDATE')
                 FROM pg_roles r WHERE r.rolname = session_user"""


@dataclass(frozen=True)
class Ping:
    """One ping as the route read it: the key's SHA-256, the URL's signal, the body."""

    key_hash: bytes
    signal: str                 # '', 'start', 'fail', 'log' or an exit status '0'..'255'
    body: str | None
    body_bytes: int             # the size received, which may exceed what ``body`` carries


@dataclass(frozen=True)
class Beat:
    """One item of a bearer-token batch, already validated."""

    agent: str
    proof: bytes                # SHA-256 of the bearer token
    kind: str
    sent_at: datetime | None
    message: str | None
    payload: str | None         # JSON text


@dataclass(frozen=True)
class Outcome:
    """The database's answer for one item: stored (at ``received_at``, for batches), or refused
    with ``error``."""

    received_at: datetime | None
    error: str | None
    retry_after_s: float | None


class Backend:
    """One per server process; ``close`` sends what is queued and closes the pool."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or config.database_url()
        self.login = str(connect_kwargs(self.url).get("user") or "")
        self.db = Database(self.url, maxconn=config.PING_FLUSHERS + config.BATCH_FLUSHERS,
                           retry_window=config.db_wait_s(), application_name="agents_pipeline:api")
        self.calls = Database(self.url, maxconn=config.CALL_CONNECTIONS, retry_window=config.db_wait_s(),
                              application_name="agents_pipeline:api-calls")
        self._checked = threading.Event()
        self.pings: GroupCommitWriter[Ping, Outcome] = GroupCommitWriter(
            self._send_pings, flushers=config.PING_FLUSHERS, name="ping-writer")
        self.beats: GroupCommitWriter[Beat, Outcome] = GroupCommitWriter(
            self._send_beats, flushers=config.BATCH_FLUSHERS, name="batch-writer")

    def close(self) -> None:
        self.pings.close()
        self.beats.close()
        self.db.close()
        self.calls.close()

    def check_login(self, cur) -> None:
        """Refuses to work as an operator's or a superuser's login (once per process)."""
        if self._checked.is_set():
            return
        cur.execute(LOGIN_CHECK)
        user, operator = cur.fetchone()
        if operator:
            raise ConfigurationError(
                f"the API's database login {user!r} may read or write the agent registry: it must be the "
                f"API's own login (<prefix>_api), never an operator's; see docs/security.md")
        self._checked.set()

    def verify(self) -> None:
        """The login check on its own (at start-up), within the database wait."""
        self.db.transaction(self.check_login)

    def ensure_verified(self) -> None:
        """Before a call on ``calls``: the login check, if the database was away at start-up."""
        if not self._checked.is_set():
            self.calls.transaction(self.check_login)

    def _send_pings(self, items: list[Ping]) -> list[Outcome]:
        columns = ([i.key_hash for i in items], [i.signal for i in items],
                   [i.body for i in items], [i.body_bytes for i in items])

        def work(cur):
            self.check_login(cur)
            cur.execute(PING_SQL, columns)
            return cur.fetchall()

        return [Outcome(None, row[0], row[1]) for row in self.db.transaction(work)]

    def _send_beats(self, items: list[Beat]) -> list[Outcome]:
        columns = ([i.agent for i in items], [i.proof for i in items], [i.kind for i in items],
                   [i.sent_at for i in items], [i.message for i in items], [i.payload for i in items])

        def work(cur):
            self.check_login(cur)
            cur.execute(BATCH_SQL, columns)
            return cur.fetchall()

        return [Outcome(row[1], row[2], row[3]) for row in self.db.transaction(work)]
