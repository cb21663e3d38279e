"""Dagster's storage keeps one pooled engine per process: instances built per sensor tick reuse
its connections instead of forking a PostgreSQL backend for every storage call."""

from __future__ import annotations

import psycopg2

from agents_pipeline.core import dagster_storage
from agents_pipeline.core.dsn import connect_kwargs


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
