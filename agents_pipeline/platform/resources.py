"""The Dagster side's door to PostgreSQL: one pooled SQLAlchemy engine per process and URL.

Also the rule every resource that holds an endpoint or a secret follows: the value in use is
the environment's, read when used. A ConfigurableResource field set from dg.EnvVar can be
overridden from the Launchpad (run config), and a Launchpad user could then point a client at
a host of their choosing while the key still comes from ``{env: ...}``; a configured value that
differs from the environment is therefore refused (``refuse_override``).

With AGENTS_PIPELINE_DATABASE_URL unset, the shared-state database is the project's own
PostgreSQL while it runs (``instance_env.app_database_url``), so `dg dev` after `make run` needs
no exports; with neither, using the resource fails with one line saying what to do.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import sqlalchemy as sa
from pydantic import Field, PrivateAttr

from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs, mask_url
from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.replica import read_url
from agents_pipeline.core.settings import DATABASE_URL
from agents_pipeline.platform.engine import create_engine
from agents_pipeline.platform.instance_env import app_database_url

_ENGINES: dict[tuple[int, str, int], sa.Engine] = {}
_ENGINES_LOCK = threading.Lock()


def shared_engine(url: str, pool_size: int) -> sa.Engine:
    """One pooled engine per process and URL. Dagster sets a resource up again for every sensor
    tick; an engine per tick would open (and PostgreSQL fork) fresh connections every few seconds,
    which was most of the running stack's CPU. The process id in the key keeps a forked child from
    reusing its parent's connections."""
    key = (os.getpid(), url, pool_size)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            engine = create_engine(url, application_name="agents_pipeline:dagster", pool_size=pool_size)
            _ENGINES[key] = engine
        return engine


def refuse_override(resource: str, field: str, configured: object, environment: object, variable: str,
                    default: object = None) -> None:
    """Raises when ``configured`` (code or run config) is set and is not the environment's value.

    A field left empty or at its default means "not configured here": the environment's value
    is used. The message names the field and the variable, never a value (it may be a secret)."""
    if configured in (None, "") or configured == default or configured == environment:
        return
    raise ConfigurationError(
        f"resource {resource!r}: {field} differs from the environment variable {variable}; endpoints and "
        f"secrets are read from the environment only. Remove {field} from the run config, or change "
        f"{variable} where the process is started")


class PostgresResource(dg.ConfigurableResource):
    """Shared-state database. The URL comes from AGENTS_PIPELINE_DATABASE_URL via dg.EnvVar, so
    it never appears in run config; the UI shows only the variable's name. A URL given in run
    config that is not the variable's is refused: it could send the writes, or a password from
    PGPASSWORD, to another server. Left empty, the URL is resolved where the resource is used
    (the variable, else the running local cluster), never written into config or metadata."""

    url: str = Field(default="", description="postgresql+psycopg2:// URL of the shared-state database; "
                                             "empty: AGENTS_PIPELINE_DATABASE_URL, else the project's PostgreSQL")
    pool_size: int = Field(default=5, description="connections kept per process (one process per step)")

    _engine: sa.Engine | None = PrivateAttr(default=None)

    def _checked_url(self) -> str:
        # Deployments set the variable (postgres_resource binds it), so a run-config URL is refused
        # unless it is the same. Unset, a URL given in code is used (tests, embedding), else the
        # project's running PostgreSQL, else DatabaseNotConfigured (one line, no URL in it).
        environment = os.environ.get(DATABASE_URL)
        if environment:
            refuse_override("postgres", "url", self.url, environment, DATABASE_URL)
            return environment
        return self.url or app_database_url()

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        url = self._checked_url()
        connect_kwargs(url)  # validates the URL with a message that masks the password
        self._engine = shared_engine(url, self.pool_size)

    def create_resource(self, context: dg.InitResourceContext) -> PostgresResource:
        """What assets and ops receive: this resource with ``url`` set to the URL in use, since
        several of them pass ``postgres.url`` on to plain functions. Config is left as it was."""
        url = self._checked_url()
        return self if url == self.url else self.model_copy(update={"url": url})

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # The engine outlives the run or tick (see shared_engine); its pool closes with the process.
        self._engine = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:  # used outside a run (tests, sensors): make it on demand
            self.setup_for_execution(dg.build_init_resource_context())
        assert self._engine is not None
        return self._engine

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection in a transaction: committed on success, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @property
    def read_engine(self) -> sa.Engine:
        """For reads that only display (summaries for the UI, help retrieval, rollup and LLM
        statistics): the streaming replica AGENTS_PIPELINE_READ_DATABASE_URL names, else the
        primary. Never for writes or for anything that judges liveness (core/replica.py)."""
        url = read_url()
        if url is None:
            return self.engine
        connect_kwargs(url)
        return shared_engine(url, self.pool_size)

    def read_database(self, maxconn: int = 2) -> Database:
        """The agent-side Database for display reads: the replica when one is set."""
        return Database(read_url() or self._checked_url(), maxconn=maxconn)

    def database(self, maxconn: int = 2) -> Database:
        """The agent-side Database over the same URL, for core functions (registry, migrations)."""
        return Database(self._checked_url(), maxconn=maxconn)

    @property
    def display_url(self) -> str:
        return mask_url(self._checked_url())


def postgres_resource() -> PostgresResource:
    """The resource every domain uses. Bound to dg.EnvVar only when the variable is set: an unset
    EnvVar fails every run and sensor tick in Dagster, where the project's PostgreSQL would do
    (as with the alert channels, agents_pipeline/defs/alerts/resources.py)."""
    if os.environ.get(DATABASE_URL):
        return PostgresResource(url=dg.EnvVar(DATABASE_URL))
    return PostgresResource()
