"""The API server's settings: where it listens, which login it uses, and its limits.

Limits are constants rather than settings where the database holds the real rule (the message
cap, batch sizes, rate limits live in SQL); these only bound what one request may cost the server
before the database sees it.
"""

from __future__ import annotations

import os

from agents_pipeline.core import settings
from agents_pipeline.core.dsn import connect_kwargs, make_url
from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.roles import roles
from agents_pipeline.core.validation import MAX_MESSAGE

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 3001

# A ping's body becomes its message: up to MAX_MESSAGE bytes kept, the rest cut and marked in SQL
# (fleet.cut_message). A body over PING_BODY_LIMIT is refused (413) before it is read whole, as
# is a heartbeat batch over BATCH_BODY_LIMIT; a body that trickles in slower than BODY_TIMEOUT_S
# gets a 408, so a slow client cannot hold a request open for ever.
PING_BODY_LIMIT = 100_000
BATCH_BODY_LIMIT = 1024 * 1024
BODY_TIMEOUT_S = 10.0
MESSAGE_CAP = MAX_MESSAGE          # bytes; equal to fleet.heartbeat_message_cap() (a test checks)
MAX_BATCH_ITEMS = 5000             # fleet.record_heartbeats' own cap

# How long a request waits for the database (its retries included) before a 503 with
# Retry-After: a client such as `curl --retry` comes back rather than hanging. A restart that
# takes less than this is invisible to clients.
DB_WAIT = "AGENTS_PIPELINE_API_DB_WAIT_S"
DEFAULT_DB_WAIT_S = 3.0
RETRY_AFTER_UNAVAILABLE_S = 5
# Statements in flight at once: pings merged by PING_FLUSHERS threads, bearer batches by one.
PING_FLUSHERS = 2
BATCH_FLUSHERS = 1
# The agent calls (key-value, messages, tasks, metrics, help) and the operator reads run in
# threads on a pool of their own, so a burst of them never takes the ping writers' connections.
CALL_CONNECTIONS = 4
# A call's JSON body: a key-value value may be 1 MiB of JSON (fleet.kv_set's cap), which takes a
# little more as text; every other call's caps are smaller and checked by core's validation.
CALL_BODY_LIMIT = 2 * 1024 * 1024
# Requests served at once; beyond this uvicorn answers 503 at once instead of queueing.
LIMIT_CONCURRENCY = 2000


def database_url() -> str:
    """AGENTS_PIPELINE_API_DATABASE_URL, else the shared-state URL with the API's own login
    (``<prefix>_api``) in place of its user and without its password: that works with the
    project-local cluster (trust over its Unix socket); elsewhere set the variable."""
    explicit = os.environ.get(settings.API_DATABASE_URL, "").strip()
    if explicit:
        return explicit
    from agents_pipeline.core.shared_state import resolve_url

    base = resolve_url()
    kwargs = connect_kwargs(base)
    host = str(kwargs.pop("host", "") or "")
    port = str(kwargs.pop("port", 5432))   # a list ("5432,5433") when the URL names several hosts
    if not host:
        raise ConfigurationError(f"set {settings.API_DATABASE_URL}: the shared-state URL names no host")
    keep = {k: str(v) for k, v in kwargs.items() if k not in {"dbname", "user", "password"}}
    return make_url(str(kwargs["dbname"]), user=roles().api, host=host, port=port, **keep)


def db_wait_s() -> float:
    """AGENTS_PIPELINE_API_DB_WAIT_S (default 3): seconds, 0.1 to 60."""
    raw = os.environ.get(DB_WAIT, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_DB_WAIT_S
    except ValueError:
        raise ConfigurationError(f"{DB_WAIT} must be a number of seconds, got {raw!r}") from None
    if not 0.1 <= value <= 60:
        raise ConfigurationError(f"{DB_WAIT} must be 0.1 to 60 seconds, got {value}")
    return value
