"""Where the Dagster side finds PostgreSQL when nothing in dagster.yaml or run config says.

One rule, shared by Dagster's own storage (``platform/storage.py``) and the shared-state
resource (``platform/resources.py``), so that `dg dev`, `dagster dev` and every other
Dagster command work from the project folder with no exports after `make run`:

1. AGENTS_PIPELINE_DATABASE_URL (and, for Dagster's storage, AGENTS_PIPELINE_DAGSTER_DATABASE_URL,
   else database ``dagster`` on the same server);
2. else the project-local cluster, when it is running (``agents-pipeline db up`` / `make run`);
3. else DatabaseNotConfigured: one line saying what to do, no traceback.

The rule is applied when a database is first needed, never at import: definitions-only commands
(`dg check defs`, `dg list defs`) need no database at all, while `dg dev`, `dagster dev` and
`dagster-daemon run` apply it as they build the instance and so stop before starting anything.

``dagster_storage_env`` still turns a URL into the AGENTS_PIPELINE_DAGSTER_PG_* variables that
deploy/dagster.yaml reads (its ``postgres_db`` fields cannot take a URL; over a Unix socket the
host is left empty and libpq reads PGHOST; TLS travels as PGSSLMODE/..., as ``params`` cannot
read the environment).
"""

from __future__ import annotations

import os
import threading
import time

import click
import sqlalchemy as sa

from agents_pipeline.core import settings
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import ConfigurationError

DAGSTER_URL = "AGENTS_PIPELINE_DAGSTER_DATABASE_URL"
DAGSTER_DB = "dagster"
_LIBPQ_ENV = {"host": "PGHOST", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
              "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}
_URL_PARTS = ("dbname", "user", "password", "host", "port")
#: How long a running local cluster is taken for granted: the code server builds an instance and
#: the resources for every sensor tick, and `pg_ctl status` is a process start each time.
LOCAL_CHECK_TTL_S = 30.0

_local_lock = threading.Lock()
_local_running_since: dict[str, float] = {}


class DatabaseNotConfigured(click.ClickException, ConfigurationError):
    """No database URL in the environment and no running project-local cluster.

    A ``click.ClickException`` because dagster, dg, dagster-webserver and dagster-daemon are click
    programs: click prints it as ``Error: <message>`` and exits 1 instead of a traceback. The
    message never holds a URL, so it cannot hold a password."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}: run `make run` (it starts the project's PostgreSQL) "
                         f"or set {settings.DATABASE_URL}")


def local_cluster_url(dbname: str = "agents_pipeline") -> str | None:
    """The project-local cluster's URL for ``dbname`` when the cluster is running, else None.

    The cluster ``resolve_url`` falls back to (``LocalCluster.default()``), but only while it runs:
    a stopped cluster would otherwise surface as a connection error from deep inside Dagster.
    A cluster seen running is believed for LOCAL_CHECK_TTL_S; one seen stopped is asked again."""
    from agents_pipeline.core.localdb import LocalCluster

    cluster = LocalCluster.default()
    key, now = str(cluster.home), time.monotonic()
    with _local_lock:
        since = _local_running_since.get(key)
    if since is None or now - since >= LOCAL_CHECK_TTL_S:
        if not ("port" in cluster.state() and cluster.is_running()):
            return None
        with _local_lock:
            _local_running_since[key] = now
    return cluster.url(dbname)


def app_database_url(what: str = "no shared-state database") -> str:
    """AGENTS_PIPELINE_DATABASE_URL, else the running local cluster, else DatabaseNotConfigured."""
    url = os.environ.get(settings.DATABASE_URL) or local_cluster_url()
    if not url:
        raise DatabaseNotConfigured(what)
    return url


def dagster_database_url() -> str:
    """The URL Dagster's storage uses: AGENTS_PIPELINE_DAGSTER_DATABASE_URL, else database
    ``dagster`` beside the shared state (environment or running local cluster).

    TLS settings from AGENTS_PIPELINE_SSL* and a Unix socket directory go into the URL's query,
    which psycopg2 hands to libpq, as ``dagster_storage_env`` does through PG* variables."""
    explicit = os.environ.get(DAGSTER_URL)
    if explicit:
        return storage_url(explicit)
    return storage_url(app_database_url("no database for Dagster's storage"), DAGSTER_DB)


def storage_url(url: str, dbname: str | None = None) -> str:
    """``url`` as a SQLAlchemy URL for dagster-postgres, on database ``dbname`` if given."""
    kwargs = connect_kwargs(url)   # validates, masking the password; adds TLS from the environment
    if dbname:
        kwargs["dbname"] = dbname
    host = str(kwargs.get("host", ""))
    query = {key: str(value) for key, value in kwargs.items() if key not in _URL_PARTS}
    if host.startswith("/") or not host or "," in host:
        # A socket directory, libpq's default or a list of hosts (failover, with their ports) is
        # no URL host: psycopg2 takes it from the query and libpq tries each host in turn.
        query.update({k: str(kwargs[k]) for k in ("host", "port") if k in kwargs})
        host = ""
    return sa.engine.URL.create(
        "postgresql+psycopg2", username=str(kwargs.get("user", "postgres")),
        password=str(kwargs["password"]) if "password" in kwargs else None, host=host or None,
        port=int(kwargs["port"]) if host and "port" in kwargs else None, database=str(kwargs["dbname"]),
        query=query,
    ).render_as_string(hide_password=False)


def dagster_storage_env(app_url: str) -> dict[str, str]:
    """Variables for deploy/dagster.yaml's ``postgres_db``: the Dagster database on the same
    server unless AGENTS_PIPELINE_DAGSTER_DATABASE_URL names another."""
    explicit = os.environ.get(DAGSTER_URL)
    kwargs = connect_kwargs(explicit or app_url)
    if not explicit:
        kwargs["dbname"] = DAGSTER_DB
    host = str(kwargs.get("host", ""))
    env = {
        "AGENTS_PIPELINE_DAGSTER_PG_USER": str(kwargs.get("user", "postgres")),
        "AGENTS_PIPELINE_DAGSTER_PG_PASSWORD": str(kwargs.get("password", "")),
        "AGENTS_PIPELINE_DAGSTER_PG_HOST": "" if host.startswith("/") else host,
        "AGENTS_PIPELINE_DAGSTER_PG_PORT": str(kwargs.get("port", 5432)),
        "AGENTS_PIPELINE_DAGSTER_PG_DB": str(kwargs["dbname"]),
    }
    for key, var in _LIBPQ_ENV.items():
        if key in kwargs and (key != "host" or host.startswith("/")):
            env[var] = str(kwargs[key])
    if host.startswith("/") and "port" in kwargs:
        env["PGPORT"] = str(kwargs["port"])
    return env


def dagster_env(app_url: str) -> dict[str, str]:
    """What `agents-pipeline dev` adds to the environment of `dagster dev`: the shared-state URL
    (so the resource's run-config guard is on, and no process has to look for the local cluster)
    and DAGSTER_HOME (the project folder unless set). The storage in the root dagster.yaml derives
    its own URL from these; deploy/dagster.yaml wants ``dagster_storage_env`` besides."""
    return {
        settings.DATABASE_URL: app_url,
        "DAGSTER_HOME": os.environ.get("DAGSTER_HOME") or str(settings.PROJECT_DIR),
    }
