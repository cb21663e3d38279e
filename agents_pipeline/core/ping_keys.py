"""Ping keys: the per-agent key in a ping URL (``<api>/ping/<key>``), for operators.

A ping key can do one thing only, send heartbeat signals for its own agent through the HTTP
API, so it is low-privilege and operators may read it back, unlike the token (shown once,
stored as a hash). The key is made by fleet.agents' column default (sql/0013_ping_keys.sql),
so every way an agent is registered gets one; rotating is ``SET ping_key = DEFAULT``. Reading
and rotating need a login that may read and write the registry; agents' roles and the API's
have no table privilege and no function that returns a key.
"""

from __future__ import annotations

import hashlib
import re

from agents_pipeline.core import settings, validation
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import NotFoundError

# What fleet.agents' CHECK allows: base64url, no padding. A path segment outside this shape is
# no key at all, and the API answers it as an unknown key without asking the database.
KEY_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,64}")


def key_hash(key: str) -> bytes:
    """What the API sends instead of the key (the unique index of sql/0013 is over this), so no
    key is in statement text, pg_stat_activity or the server log."""
    return hashlib.sha256(key.encode("ascii")).digest()


def ping_url(key: str, base: str | None = None) -> str:
    """The agent's ping URL under ``base`` (default: AGENTS_PIPELINE_API_URL)."""
    return f"{(base or settings.api_url()).rstrip('/')}/ping/{key}"


def ping_key(db: Database, name: str) -> str:
    """The agent's current ping key (an operator's read)."""
    name = validation.name(name)

    def work(cur) -> str:
        cur.execute("SELECT ping_key FROM fleet.agents WHERE name = %s", (name,))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"unknown agent {name!r}")
        return row[0]

    return db.transaction(work)


def rotate_ping_key(db: Database, name: str) -> str:
    """A new ping key; the old one stops working at once (its next ping gets a 404)."""
    name = validation.name(name)

    def work(cur) -> str:
        cur.execute("UPDATE fleet.agents SET ping_key = DEFAULT, updated_at = now() WHERE name = %s "
                    "RETURNING ping_key", (name,))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"unknown agent {name!r}")
        return row[0]

    return db.transaction(work)
