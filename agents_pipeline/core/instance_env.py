"""The environment `dagster dev` and the Dagster CLI need: where the instance lives and how
its storage (dagster-postgres, in ``dagster.yaml``) reaches PostgreSQL.

dagster.yaml reads every storage field from these variables. Over a Unix socket the host is
left empty, so the storage URL has no host and libpq takes the socket directory from PGHOST;
TLS settings travel the same way (PGSSLMODE, ...), as dagster.yaml's ``params`` cannot read
the environment.
"""

from __future__ import annotations

import os

from agents_pipeline.core import settings
from agents_pipeline.core.dsn import connect_kwargs

DAGSTER_URL = "AGENTS_PIPELINE_DAGSTER_DATABASE_URL"
_LIBPQ_ENV = {"host": "PGHOST", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
              "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}


def dagster_storage_env(app_url: str) -> dict[str, str]:
    """Variables for dagster.yaml: the Dagster database on the same server unless
    AGENTS_PIPELINE_DAGSTER_DATABASE_URL names another."""
    explicit = os.environ.get(DAGSTER_URL)
    kwargs = connect_kwargs(explicit or app_url)
    if not explicit:
        kwargs["dbname"] = "dagster"
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
    """Everything `dagster dev` needs on top of the current environment."""
    env = {
        settings.DATABASE_URL: app_url,
        "DAGSTER_HOME": os.environ.get("DAGSTER_HOME") or str(settings.PROJECT_DIR),
    }
    env.update(dagster_storage_env(app_url))
    return env
