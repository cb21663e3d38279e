"""Operator API keys: what an operator presents to the HTTP API's GET /v1/status, /v1/alerts and
/metrics (``Authorization: Bearer apk_...``), made and revoked with an operator's login.

A key is 256 random bits, shown once; the database keeps SHA-256 of its SHA-256 (as for agent
tokens), so neither a read of fleet.api_keys nor a backup yields a key. The API's login cannot
read the table: it presents a key's SHA-256 to fleet.api_status / fleet.api_alerts, which answer
only to a live key (sql/0018_operator_api_keys.sql explains the design).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import ConflictError, NotFoundError, ValidationError

KEY_PREFIX = "apk_"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def key_proof(key: str) -> bytes:
    """What the API sends for a key: its SHA-256 (fleet.api_status hashes it once more)."""
    return hashlib.sha256(key.encode("utf-8")).digest()


def _name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(f"an API key name is 1 to 100 letters, digits or _ . - (starting with a letter "
                              f"or digit), got {str(name)[:60]!r}")
    return name


def create_api_key(db: Database, name: str) -> str:
    """A new live key named ``name``; returns it (the only time it is seen)."""
    name = _name(name)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    stored = hashlib.sha256(key_proof(key)).digest()

    def work(cur) -> bool:
        cur.execute("""INSERT INTO fleet.api_keys (name, key_hash) VALUES (%s, %s)
                       ON CONFLICT (name) WHERE revoked_at IS NULL DO NOTHING RETURNING key_id""", (name, stored))
        return cur.fetchone() is not None

    if not db.transaction(work):
        raise ConflictError(f"a live API key named {name!r} exists: revoke it first (agents-pipeline api-key "
                            f"revoke {name})", current_version=0)
    return key


def revoke_api_key(db: Database, name: str) -> None:
    """Ends the live key named ``name`` at once (its next request gets 401)."""
    name = _name(name)

    def work(cur) -> int:
        cur.execute("UPDATE fleet.api_keys SET revoked_at = now() WHERE name = %s AND revoked_at IS NULL", (name,))
        return cur.rowcount

    if db.transaction(work) == 0:
        raise NotFoundError(f"no live API key named {name!r}")


def list_api_keys(db: Database) -> list[dict[str, Any]]:
    """Every key, live and revoked (never a key or its hash)."""
    def work(cur):
        cur.execute("""SELECT name, created_at, last_used_at, revoked_at FROM fleet.api_keys
                       ORDER BY revoked_at IS NULL DESC, name, created_at""")
        return [dict(r) for r in cur.fetchall()]

    return db.transaction(work)
