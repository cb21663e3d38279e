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

``LazyPostgresStorage`` (the root dagster.yaml) puts off choosing and reaching the database until
a storage is first used. Dagster builds an instance, and with it the storage, for every CLI
command, including those that only load definitions (`dg check defs`, `dg list defs`,
`dagster definitions validate`); dagster-postgres connects in its constructor, and dagster.yaml's
``{env: ...}`` fields fail when a variable is unset. Built lazily from the environment
(``instance_env.dagster_database_url``) those commands need no database and no variable, and a
command that does need one says in one line how to get it. The instance takes the run, event-log
and schedule storages out of the storage while it is being built, so the waiting is done by
proxies: Dagster's own Legacy* storages, which forward every call to a ``DagsterStorage``, here
one that builds ``PooledPostgresStorage`` on the first call.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from dagster._config.config_schema import UserConfigSchema
from dagster._core.storage.base_storage import DagsterStorage
from dagster._core.storage.config import pg_config
from dagster._core.storage.defs_state.base import DEFS_STATE_INFO_CURSOR_KEY
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.legacy_storage import (
    LegacyEventLogStorage,
    LegacyRunStorage,
    LegacyScheduleStorage,
)
from dagster._core.storage.runs.base import RunStorage
from dagster._core.storage.schedules.base import ScheduleStorage
from dagster._serdes import ConfigurableClass, ConfigurableClassData
from dagster_postgres import DagsterPostgresStorage
from dagster_postgres.utils import create_pg_engine, get_token_provider_from_config, pg_url_from_config

from agents_pipeline.platform.instance_env import DatabaseNotConfigured, dagster_database_url

if TYPE_CHECKING:
    from dagster._core.events.log import EventLogEntry

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


class _Deferred(DagsterStorage):
    """The storage the proxies below read through: built by ``build`` on first use, then told
    about the instance the proxies were registered with (dagster-postgres needs it for runs)."""

    def __init__(self, build: Callable[[], DagsterStorage]) -> None:
        super().__init__()
        self._build = build
        self._real: DagsterStorage | None = None
        self._lock = threading.RLock()

    @property
    def built(self) -> bool:
        return self._real is not None

    def real(self) -> DagsterStorage:
        with self._lock:
            if self._real is None:
                real = self._build()
                instance = self._instance_weakref() if self._instance_weakref is not None else None
                if instance is not None:
                    for storage in (real.run_storage, real.event_log_storage, real.schedule_storage):
                        storage.register_instance(instance)
                self._real = real
            return self._real

    @property
    def run_storage(self) -> RunStorage:
        return self.real().run_storage

    @property
    def event_log_storage(self) -> EventLogStorage:
        return self.real().event_log_storage

    @property
    def schedule_storage(self) -> ScheduleStorage:
        return self.real().schedule_storage


class _ReadThrough:
    """Anything the proxy does not define (``upgrade``, ``connect``, ``has_table``: methods of the
    SQL storages that Dagster calls without their being in the abstract interface) is the real
    storage's. Dagster's Legacy* proxies, made for the same job, stop at the abstract methods."""

    _storage: _Deferred
    _part: str

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_storage", "_part", "_inst_data", "_instance_weakref"):
            raise AttributeError(name)
        return getattr(getattr(self._storage, self._part), name)

    def dispose(self) -> None:
        if self._storage.built:       # closing an instance must not reach for a database first
            getattr(self._storage, self._part).dispose()

    def alembic_version(self) -> Any:
        return getattr(self._storage, self._part).alembic_version()


class _LazyRunStorage(_ReadThrough, LegacyRunStorage):
    _part = "run_storage"

    def get_cursor_values(self, keys: set[str]) -> Mapping[str, str]:
        """Every definitions load asks run storage for the state of state-backed components
        (``DEFS_STATE_INFO_CURSOR_KEY``); with no database configured nothing was ever stored, so
        the answer is "none" and `dg check defs` works without one. Any other read needs it."""
        try:
            return super().get_cursor_values(keys)
        except DatabaseNotConfigured:
            if set(keys) <= {DEFS_STATE_INFO_CURSOR_KEY}:
                return {}
            raise


class _LazyEventLogStorage(_ReadThrough, LegacyEventLogStorage):
    _part = "event_log_storage"

    @property
    def is_persistent(self) -> bool:
        return True                   # PostgreSQL; asked without needing the database

    @property
    def supports_global_concurrency_limits(self) -> bool:   # pools (dagster.yaml) depend on it
        return self._storage.event_log_storage.supports_global_concurrency_limits

    @property
    def supports_asset_checks(self) -> bool:
        return self._storage.event_log_storage.supports_asset_checks

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        self._storage.event_log_storage.store_event_batch(events)


class _LazyScheduleStorage(_ReadThrough, LegacyScheduleStorage):
    _part = "schedule_storage"

    @property
    def supports_auto_materialize_asset_evaluations(self) -> bool:
        return self._storage.schedule_storage.supports_auto_materialize_asset_evaluations


#: (program, command) of the processes that start long-running services on the instance. There
#: the database is resolved when the instance is built: a missing one stops `dg dev` in one line,
#: where otherwise the webserver, the daemon's threads and the code server would each log it.
_SERVICE_COMMANDS = {("dagster", "dev"), ("dg", "dev"), ("dagster-daemon", "run")}


def _starts_services(argv: Sequence[str] | None = None) -> bool:
    argv = sys.argv if argv is None else argv
    program = Path(argv[0]) if argv else Path()
    name = program.parent.name if program.name == "__main__.py" else program.name   # python -m dagster
    words = [arg for arg in argv[1:] if not arg.startswith("-")]
    return (name, words[0] if words else "") in _SERVICE_COMMANDS


class LazyPostgresStorage(DagsterStorage, ConfigurableClass):
    """PooledPostgresStorage, built when a storage is first used rather than with the instance.

    Takes dagster-postgres's own config (``postgres_url`` or ``postgres_db``); with neither, the
    database comes from the environment (``instance_env.dagster_database_url``), and with none
    there a command that needs storage stops with one line saying what to do."""

    def __init__(self, postgres_url: str | None = None, should_autocreate_tables: bool = True,
                 inst_data: ConfigurableClassData | None = None, token_provider: Any = None) -> None:
        self._inst_data = inst_data
        self._postgres_url = postgres_url
        self._should_autocreate_tables = should_autocreate_tables
        self._token_provider = token_provider
        if postgres_url is None and _starts_services():
            dagster_database_url()      # DatabaseNotConfigured now, before any service starts
        self._deferred = _Deferred(self._build)
        self._run_storage = _LazyRunStorage(self._deferred)
        self._event_log_storage = _LazyEventLogStorage(self._deferred)
        self._schedule_storage = _LazyScheduleStorage(self._deferred)
        super().__init__()

    def _build(self) -> DagsterStorage:
        url = self._postgres_url or dagster_database_url()
        return PooledPostgresStorage(url, self._should_autocreate_tables, token_provider=self._token_provider)

    @property
    def built(self) -> bool:
        """Whether anything has reached for the database yet (tests and benchmarks ask)."""
        return self._deferred.built

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> UserConfigSchema:
        return pg_config()

    @classmethod
    def from_config_value(cls, inst_data: ConfigurableClassData | None,  # type: ignore[override]
                          config_value: Mapping[str, Any]) -> LazyPostgresStorage:
        configured = config_value.get("postgres_url") or config_value.get("postgres_db")
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value) if configured else None,
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )

    @property
    def run_storage(self) -> RunStorage:
        return self._run_storage

    @property
    def event_log_storage(self) -> EventLogStorage:
        return self._event_log_storage

    @property
    def schedule_storage(self) -> ScheduleStorage:
        return self._schedule_storage
