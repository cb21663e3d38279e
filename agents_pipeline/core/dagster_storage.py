"""Dagster instance storage on PostgreSQL that keeps its connections open.

dagster-postgres gives the daemon, the code server and every run a ``NullPool`` engine (only
the webserver gets a pool), and the code server builds a new ``DagsterInstance`` for every tick
of a sensor that has resources, which inspects the catalog three times and connects again for
every storage call. Measured on the running stack: about 1,000 new PostgreSQL backends a minute,
most of the product's CPU (docs/BENCHMARKS.md). dagster-postgres has no setting for either, so
this subclass (the documented ``storage: custom`` extension point) does two small things and
leaves every query to dagster-postgres:

- one pooled engine per process and URL, shared by the run, event-log and schedule storages of
  every instance the process builds (``pool_pre_ping`` survives a server restart);
- the "do the tables exist" inspection once per process and URL instead of once per instance.

PgBouncer would also absorb the connection churn, but it is one more server to install and run
beside a project-local PostgreSQL; this is a few lines on top of the library.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import sqlalchemy as sa
from dagster._serdes import ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

#: Connections one process keeps: the daemon's threads and the code server's sensor threads
#: (dagster.yaml: four sensor workers, two schedule workers) each hold one for a query at a time.
POOL_SIZE = 4
MAX_OVERFLOW = 8
POOL_RECYCLE_S = 3600

_lock = threading.Lock()
_engines: dict[tuple[int, str], sa.engine.Engine] = {}
_checked: set[tuple[int, str]] = set()


def pooled_engine(postgres_url: str) -> sa.engine.Engine:
    """The process's engine for ``postgres_url``; made again in a forked child."""
    key = (os.getpid(), postgres_url)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_pg_engine(postgres_url, isolation_level="AUTOCOMMIT", pool_size=POOL_SIZE,
                                      max_overflow=MAX_OVERFLOW, pool_recycle=POOL_RECYCLE_S,
                                      pool_pre_ping=True)
            _engines[key] = engine
        return engine


def _first_check(postgres_url: str) -> bool:
    """True once per process and URL: that instance checks (and creates) Dagster's tables."""
    key = (os.getpid(), postgres_url)
    with _lock:
        if key in _checked:
            return False
        _checked.add(key)
        return True


class PooledPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres storage whose three storages share one pooled engine per process."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True,
                 inst_data: ConfigurableClassData | None = None, token_provider: Any = None) -> None:
        autocreate = should_autocreate_tables and _first_check(postgres_url)
        super().__init__(postgres_url, autocreate, inst_data, token_provider)
        self.should_autocreate_tables = should_autocreate_tables
        if token_provider is not None:
            return      # tokens are injected per connection by the stock engines; keep them
        engine = pooled_engine(postgres_url)
        for storage in (self._run_storage, self._event_log_storage, self._schedule_storage):
            storage._engine.dispose()       # a NullPool engine holds nothing; release it anyway
            storage._engine = engine

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,  # type: ignore[override]
                          config_value: Any) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
