"""Operator actions on the agent registry: register, list, pause, resume, tokens.

These write fleet.agents directly and so need the operator's (or the pipeline's) login; the
agent login has no such right (see the roles migration).
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg2.extensions
from psycopg2 import sql

from agents_pipeline.core import validation
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import NotFoundError, ValidationError
from agents_pipeline.core.tasks import label

TOKEN_PREFIX = "apt_"
CONNECTION_LIMIT = "AGENTS_PIPELINE_AGENT_CONNECTION_LIMIT"


def new_token() -> str:
    """A random token; only a hash of its hash is stored (fast to check on every heartbeat, and
    a slow password hash buys nothing for 256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_proof(token: str) -> bytes:
    """What a client sends instead of its token: SHA-256 of it. The token itself never travels
    in statement text, which pg_stat_activity and the server log can show."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_hash(token: str) -> bytes:
    """What the server stores, as fleet.token_hash computes it from a proof: SHA-256 of the
    proof. A read of fleet.agents (or a backup) then yields nothing an agent could present."""
    return hashlib.sha256(token_proof(token)).digest()


@dataclass(frozen=True)
class Registration:
    agent_id: int
    name: str
    token: str
    login: str | None = None   # the agent's own database login (password: its token), when made
    ping_key: str | None = None  # for /ping/<key> (fleet.agents' default makes it; core.ping_keys)


def connection_limit() -> int:
    raw = os.environ.get(CONNECTION_LIMIT, "").strip()
    try:
        value = int(raw) if raw else 10
    except ValueError:
        raise ValidationError(f"{CONNECTION_LIMIT} must be a whole number, got {raw!r}") from None
    if not 1 <= value <= 1000:
        raise ValidationError(f"{CONNECTION_LIMIT} must be 1 to 1000, got {value}")
    return value


def ensure_login(cur, agent_id: int, token: str) -> str | None:
    """The agent's own login (fleet.ensure_agent_login) with the token as its password, when the
    operator may create roles; None otherwise (the agent then uses the shared agent login). The
    password goes as a SCRAM verifier computed here, so the token is in no statement."""
    cur.execute("SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user")
    if not cur.fetchone()[0]:
        return None
    verifier = psycopg2.extensions.encrypt_password(token, "agent", cur.connection, "scram-sha-256")
    cur.execute("SELECT fleet.ensure_agent_login(%s, %s, %s)", (agent_id, verifier, connection_limit()))
    return cur.fetchone()[0]


def register_agent(
    db: Database, name: str, *, period_s: float = 60, grace_s: float = 30, agent_type: str = "generic",
    host: str | None = None, pid: int | None = None, pidfile: str | None = None, match: str | None = None,
    config: dict[str, Any] | None = None,
) -> Registration:
    """Registers a new agent and returns its token (shown once, stored only as a hash)."""
    name = validation.name(name)
    if period_s < 1 or grace_s < 0:
        raise ValidationError("period must be at least 1 s and grace at least 0 s")
    if sum(x is not None for x in (pid, pidfile, match)) > 1:
        raise ValidationError("give at most one of --pid, --pidfile, --match")
    if pid is not None and pid <= 0:
        raise ValidationError(f"pid must be positive, got {pid}")
    token = new_token()
    doc = validation.document(config or {}, "agent config")

    def work(cur):
        cur.execute("SELECT 1 FROM fleet.agents WHERE name = %s", (name,))
        if cur.fetchone():
            raise ValidationError(f"agent {name!r} is already registered (rotate its token instead)")
        cur.execute(
            """INSERT INTO fleet.agents (name, agent_type, host, period, grace, process_pid,
                   process_pidfile, process_match, token_hash, token_issued_at, config)
               VALUES (%s, %s, %s, make_interval(secs => %s), make_interval(secs => %s), %s, %s, %s,
                   %s, now(), %s::jsonb)
               RETURNING agent_id, ping_key""",
            (name, validation.text(agent_type, "agent type", max_len=100, required=True),
             validation.text(host, "host", max_len=255), period_s, grace_s, pid,
             validation.text(pidfile, "pidfile", max_len=4096), validation.text(match, "match pattern", max_len=1000),
             token_hash(token), doc),
        )
        agent_id, ping_key = cur.fetchone()
        return agent_id, ping_key, ensure_login(cur, agent_id, token)

    agent_id, ping_key, login = db.transaction(work)
    return Registration(agent_id, name, token, login, ping_key)


def list_agents(db: Database) -> list[dict[str, Any]]:
    def work(cur):
        cur.execute(
            """SELECT agent_id, name, agent_type, host, extract(epoch FROM period)::float AS period_s,
                      extract(epoch FROM grace)::float AS grace_s, status, status_since, status_message,
                      paused, silenced_until, last_seen, last_kind, last_message, clock_skew_s,
                      heartbeat_count, process_pid, process_pidfile, process_match, lifecycle, retired_at,
                      token_hash IS NOT NULL AS has_token
               FROM fleet.agents ORDER BY name""")
        return [dict(row) for row in cur.fetchall()]

    return db.transaction(work)


def _update_one(db: Database, name: str, statement: str, params: tuple = ()) -> None:
    name = validation.name(name)

    def work(cur):
        cur.execute(statement, (*params, name))
        if cur.rowcount == 0:
            raise NotFoundError(f"unknown agent {name!r}")

    db.transaction(work)


def set_paused(db: Database, name: str, paused: bool) -> None:
    """Pausing is sticky: heartbeats do not undo it, only resume does. The health evaluator
    turns the flag into the 'paused' status and back."""
    _update_one(db, name, "UPDATE fleet.agents SET paused = %s, updated_at = now() WHERE name = %s", (paused,))


def rotate_token(db: Database, name: str) -> str:
    """A new token; the agent's own login, if it has one, takes it as its new password."""
    token = new_token()
    name = validation.name(name)

    def work(cur):
        cur.execute("""UPDATE fleet.agents SET token_hash = %s, token_issued_at = now(), updated_at = now()
                       WHERE name = %s RETURNING agent_id, db_login""", (token_hash(token), name))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"unknown agent {name!r}")
        if row[1] is not None:
            ensure_login(cur, row[0], token)

    db.transaction(work)
    return token


def revoke_token(db: Database, name: str) -> None:
    """The agent can no longer act, nor log in with its own login; its ping key is replaced too,
    so an old ping URL stops working (`agents ping-url` shows the new one)."""
    name = validation.name(name)

    def work(cur):
        cur.execute("UPDATE fleet.agents SET token_hash = NULL, ping_key = DEFAULT, updated_at = now() "
                    "WHERE name = %s RETURNING db_login",
                    (name,))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"unknown agent {name!r}")
        if row[0] is not None:
            cur.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(row[0])))

    db.transaction(work)


def grant_keys(db: Database, name: str, prefix: str, *, write: bool = False) -> None:
    """Lets agent ``name`` read (and with ``write``, write) keys under ``prefix``: a namespace
    shared with other agents. Each agent always has its own, '<name>/'."""
    prefix = validation.name(prefix, "key prefix")
    _update_one(db, name, """INSERT INTO fleet.kv_grants (agent_id, prefix, can_write)
                             SELECT agent_id, %s, %s FROM fleet.agents WHERE name = %s
                             ON CONFLICT (agent_id, prefix) DO UPDATE SET can_write = EXCLUDED.can_write""",
                (prefix, write))


def revoke_keys(db: Database, name: str, prefix: str) -> None:
    prefix = validation.name(prefix, "key prefix")

    def work(cur):
        cur.execute("""DELETE FROM fleet.kv_grants g USING fleet.agents a
                       WHERE g.agent_id = a.agent_id AND a.name = %s AND g.prefix = %s""",
                    (validation.name(name), prefix))
        if cur.rowcount == 0:
            raise NotFoundError(f"agent {name!r} has no grant on prefix {prefix!r}")

    db.transaction(work)


def set_capabilities(db: Database, name: str, capabilities: Iterable[str]) -> list[str]:
    """Replaces the task capabilities agent ``name`` may claim (fleet.claim_tasks refuses any
    other); returns them, sorted. Empty: only tasks that need no capability."""
    caps = sorted({label(c, "capability") for c in capabilities})
    if len(caps) > 100:
        raise ValidationError(f"an agent has at most 100 capabilities, got {len(caps)}")
    _update_one(db, name, "UPDATE fleet.agents SET capabilities = %s, updated_at = now() WHERE name = %s", (caps,))
    return caps


def capabilities(db: Database, name: str) -> list[str]:
    name = validation.name(name)

    def work(cur):
        cur.execute("SELECT capabilities FROM fleet.agents WHERE name = %s", (name,))
        return cur.fetchone()

    row = db.transaction(work)
    if row is None:
        raise NotFoundError(f"unknown agent {name!r}")
    return list(row[0])
