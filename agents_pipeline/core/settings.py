"""Environment variables the product reads, in one place (the README's table mirrors this)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DATABASE_URL = "AGENTS_PIPELINE_DATABASE_URL"
AGENT_TOKEN = "AGENTS_PIPELINE_AGENT_TOKEN"
HOME = "AGENTS_PIPELINE_HOME"
PG_BIN = "AGENTS_PIPELINE_PG_BIN"
RETRY_WINDOW = "AGENTS_PIPELINE_RETRY_WINDOW_S"
SSLMODE = "AGENTS_PIPELINE_SSLMODE"
SSLROOTCERT = "AGENTS_PIPELINE_SSLROOTCERT"
SSLCERT = "AGENTS_PIPELINE_SSLCERT"
SSLKEY = "AGENTS_PIPELINE_SSLKEY"
API_URL = "AGENTS_PIPELINE_API_URL"                    # where agents reach the HTTP API (ping URLs)
API_DATABASE_URL = "AGENTS_PIPELINE_API_DATABASE_URL"  # the API server's own login (<prefix>_api)
READ_DATABASE_URL = "AGENTS_PIPELINE_READ_DATABASE_URL"  # a streaming replica for display-only reads
REPLICA_MAX_LAG = "AGENTS_PIPELINE_REPLICA_MAX_LAG_S"    # the read_replica check fails beyond this
DEFAULT_API_URL = "http://127.0.0.1:3001"

# The project directory: the parent of the package (a clone, or an editable install).
PROJECT_DIR = Path(__file__).resolve().parents[2]
# The schema files: the project's sql/ folder, or the copy a built wheel carries (setup.py).
SQL_DIR = PROJECT_DIR / "sql"
if not SQL_DIR.is_dir():
    SQL_DIR = Path(__file__).resolve().parents[1] / "bundled_sql"


def project_home() -> Path:
    """Where the project-local PostgreSQL cluster lives.

    As root the cluster must run as the ``postgres`` user, which cannot traverse a clone
    under /root, so the data goes under /var/lib, keyed by the clone's path so that two
    clones never share a cluster.
    """
    explicit = os.environ.get(HOME)
    if explicit:
        return Path(explicit)
    key = hashlib.sha1(str(PROJECT_DIR).encode()).hexdigest()[:10]
    if os.geteuid() == 0:
        return Path("/var/lib/agents-pipeline") / key
    state = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return state / "agents-pipeline" / key


def retry_window_s() -> float:
    raw = os.environ.get(RETRY_WINDOW, "30")
    try:
        value = float(raw)
    except ValueError:
        from agents_pipeline.core.errors import ConfigurationError

        raise ConfigurationError(f"{RETRY_WINDOW} must be a number of seconds, got {raw!r}") from None
    return max(0.0, value)


def ssl_params() -> dict[str, str]:
    """libpq TLS settings from the environment; empty for the local default."""
    names = {"sslmode": SSLMODE, "sslrootcert": SSLROOTCERT, "sslcert": SSLCERT, "sslkey": SSLKEY}
    return {key: os.environ[env] for key, env in names.items() if os.environ.get(env)}


def api_url() -> str:
    """The HTTP API's base URL as agents reach it (behind a proxy: the proxy's), no trailing slash."""
    return (os.environ.get(API_URL, "").strip() or DEFAULT_API_URL).rstrip("/")


def replica_max_lag_s() -> float:
    """AGENTS_PIPELINE_REPLICA_MAX_LAG_S (default 30): the replica lag the readiness check allows."""
    raw = os.environ.get(REPLICA_MAX_LAG, "").strip() or "30"
    try:
        value = float(raw)
    except ValueError:
        from agents_pipeline.core.errors import ConfigurationError

        raise ConfigurationError(f"{REPLICA_MAX_LAG} must be a number of seconds, got {raw!r}") from None
    return max(0.0, value)
