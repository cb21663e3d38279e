"""Dagster's storage keeps one pooled engine per process: instances built per sensor tick reuse
its connections instead of forking a PostgreSQL backend for every storage call. The root
dagster.yaml's storage also waits to be used before it picks (and reaches) a database."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.runs.base import RunStorage
from dagster._core.storage.schedules.base import ScheduleStorage
from dagster_postgres.event_log import PostgresEventLogStorage
from dagster_postgres.run_storage import PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage

from agents_pipeline.core import settings
from agents_pipeline.core.dsn import connect_kwargs, make_url
from agents_pipeline.platform import instance_env
from agents_pipeline.platform import storage as dagster_storage


def _connections_made(url: str) -> int:
    """Backends started on the storage database so far, from the server's own statistics."""
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_stat_force_next_flush()")
            cur.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def test_instances_share_one_pool_and_create_the_tables_once(dagster_storage_url):
    first = dagster_storage.PooledPostgresStorage(dagster_storage_url)
    # The first instance of the process created Dagster's tables on the empty database.
    assert first.run_storage.get_runs_count() == 0
    assert first.event_log_storage.has_table("event_logs")
    before = _connections_made(dagster_storage_url)
    for _ in range(20):             # what the code server does on twenty sensor ticks
        storage = dagster_storage.PooledPostgresStorage(dagster_storage_url)
        assert storage.run_storage._engine is first.run_storage._engine
        assert storage.event_log_storage._engine is first.schedule_storage._engine
        storage.run_storage.get_runs_count()
        storage.schedule_storage.all_instigator_state()
        storage.event_log_storage.get_asset_records()
    made = _connections_made(dagster_storage_url) - before
    # Stock dagster-postgres opens a connection per call and inspects the catalog per storage:
    # well over 60 here. Pooled: the checks' own connections (two per _connections_made) only.
    assert made <= 3, made
    engine = first.run_storage._engine
    assert engine.pool.checkedout() == 0 and engine.pool.size() == dagster_storage.POOL_SIZE


def test_a_forked_process_gets_its_own_engine(dagster_storage_url, monkeypatch):
    engine = dagster_storage.pooled_engine(dagster_storage_url)
    assert dagster_storage.pooled_engine(dagster_storage_url) is engine
    monkeypatch.setattr(dagster_storage.os, "getpid", lambda: -1)
    assert dagster_storage.pooled_engine(dagster_storage_url) is not engine


def test_the_stock_behaviour_it_replaces(dagster_storage_url):
    """Guards the premise: if dagster-postgres ever pools by itself, this subclass can go."""
    from dagster_postgres import DagsterPostgresStorage
    from sqlalchemy.pool import NullPool

    storage = DagsterPostgresStorage(dagster_storage_url)
    assert isinstance(storage.run_storage._engine.pool, NullPool)


@pytest.fixture
def no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml, no database variable and no local cluster."""
    for name in (settings.DATABASE_URL, instance_env.DAGSTER_URL):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(settings.HOME, str(tmp_path / "no-cluster"))
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def test_the_project_instance_needs_no_database_until_storage_is_used(no_database):
    """Regression: with no database variable, every Dagster command in the project folder (even
    `dg check defs`) died in dagster.yaml's {env: AGENTS_PIPELINE_DAGSTER_PG_PORT} with a traceback."""
    with dg.DagsterInstance.get() as instance:
        # What loading definitions asks of the instance (the state of state-backed components).
        assert instance.defs_state_storage.get_latest_defs_state_info() is None
        assert instance.event_log_storage.is_persistent
        with pytest.raises(instance_env.DatabaseNotConfigured) as info:
            instance.get_runs_count()
    message = str(info.value)
    assert "\n" not in message and "`make run`" in message and settings.DATABASE_URL in message


def test_the_lazy_proxies_forward_what_the_postgres_storages_add():
    """Dagster's Legacy* proxies forward only the abstract methods; a default the Postgres storage
    overrides (supports_global_concurrency_limits: pools) would otherwise silently be the base's.
    Fails when a Dagster upgrade adds another such method: forward it in platform/storage.py."""
    pairs = [(PostgresRunStorage, dagster_storage._LazyRunStorage, RunStorage),
             (PostgresEventLogStorage, dagster_storage._LazyEventLogStorage, EventLogStorage),
             (PostgresScheduleStorage, dagster_storage._LazyScheduleStorage, ScheduleStorage)]
    unforwarded = []
    for real, proxy, base in pairs:
        for name in dir(base):
            if name.startswith("__") or not hasattr(real, name):
                continue
            owner = next(c for c in real.__mro__ if name in c.__dict__)
            if owner is base or not issubclass(owner, base):
                continue                      # the base's own default: nothing to forward
            proxy_owner = next(c for c in proxy.__mro__ if name in c.__dict__)
            if not (proxy_owner.__module__.startswith(("dagster._core.storage.legacy_storage",
                                                       dagster_storage.__name__))
                    and proxy_owner is not base):
                unforwarded.append(f"{proxy.__name__}.{name}")
    assert unforwarded == []


def test_the_lazy_storage_is_the_pooled_storage_once_used(dagster_storage_url):
    storage = dagster_storage.LazyPostgresStorage(dagster_storage_url)
    assert not storage.built
    assert storage.run_storage.get_runs_count() == 0
    assert storage.built
    # Reached through the proxies: the same pooled engine, and the features pools depend on.
    assert storage.run_storage._engine is storage.event_log_storage._engine is storage.schedule_storage._engine
    assert storage.event_log_storage.supports_global_concurrency_limits
    assert storage.schedule_storage.supports_auto_materialize_asset_evaluations


@pytest.mark.parametrize("tls", [False, True])
def test_the_derived_storage_url_reaches_the_server_as_the_exported_variables_did(monkeypatch, tls):
    """The storage URL carries what `agents-pipeline dev` used to export as PG* variables for
    dagster.yaml: a Unix socket in the query (no host), TLS settings from AGENTS_PIPELINE_SSL*."""
    if tls:
        monkeypatch.setenv(settings.SSLMODE, "verify-full")
        monkeypatch.setenv(settings.SSLROOTCERT, "/etc/ssl/ca.pem")
    monkeypatch.delenv(instance_env.DAGSTER_URL, raising=False)
    for app_url in (make_url("fleet", user="ops", host="/run/pg", port=5433),
                    make_url("fleet", user="ops", host="db.internal", port=6432, password="p@ss/word")):
        exported = instance_env.dagster_storage_env(app_url)
        derived = connect_kwargs(instance_env.storage_url(app_url, "dagster"))
        assert derived["dbname"] == exported["AGENTS_PIPELINE_DAGSTER_PG_DB"] == "dagster"
        assert derived["user"] == exported["AGENTS_PIPELINE_DAGSTER_PG_USER"]
        assert str(derived["port"]) == exported["AGENTS_PIPELINE_DAGSTER_PG_PORT"]
        assert derived.get("password", "") == exported["AGENTS_PIPELINE_DAGSTER_PG_PASSWORD"]
        assert derived["host"] == (exported["AGENTS_PIPELINE_DAGSTER_PG_HOST"] or exported["PGHOST"])
        assert derived.get("sslmode") == exported.get("PGSSLMODE")
        assert derived.get("sslrootcert") == exported.get("PGSSLROOTCERT")


def test_only_the_commands_that_start_services_resolve_the_database_up_front():
    assert dagster_storage._starts_services(["/p/.venv/bin/dg", "dev", "-p", "3000"])
    assert dagster_storage._starts_services(["/p/.venv/lib/dagster/__main__.py", "dev"])
    assert dagster_storage._starts_services(["/usr/bin/dagster-daemon", "run"])
    assert not dagster_storage._starts_services(["/p/.venv/bin/dg", "check", "defs"])
    assert not dagster_storage._starts_services(["/p/.venv/bin/dagster", "definitions", "validate"])
