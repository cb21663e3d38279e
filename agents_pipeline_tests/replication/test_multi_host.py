"""Every component takes a multi-host URL (libpq's ``host=a,b`` with ``target_session_attrs``):
listed first here is the standby, so each connection must skip it for the primary."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from dagster_postgres import DagsterPostgresStorage

from agents_pipeline.api import config as api_config
from agents_pipeline.core import registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.platform.engine import create_engine
from agents_pipeline.platform.instance_env import storage_url
from agents_pipeline_tests import replica


def test_both_spellings_become_libpq_host_lists() -> None:
    libpq = connect_kwargs("postgresql+psycopg2://u@/db?host=a,b&port=5432,5433&target_session_attrs=read-write")
    sqlalchemy_style = connect_kwargs("postgresql+psycopg2://u@/db?host=a:5432&host=b:5433"
                                      "&target_session_attrs=read-write")
    assert libpq["host"] == sqlalchemy_style["host"] == "a,b"
    assert libpq["port"] == sqlalchemy_style["port"] == "5432,5433"
    assert sqlalchemy_style["target_session_attrs"] == "read-write"
    with pytest.raises(ConfigurationError, match="give each repeated host its own port"):
        connect_kwargs("postgresql+psycopg2://u@/db?host=a&host=b&port=5432")


def test_agents_the_platform_dagster_storage_and_the_api_take_a_multi_host_url(primary, standby, monkeypatch) -> None:
    url = replica.multi_host_url(standby, primary)          # the standby first: it must be skipped
    db = Database(url, maxconn=1, retry_window=5)            # the agent side (psycopg2)
    try:
        registry.register_agent(db, "multi-host")
    finally:
        db.close()
    with SharedState(url, retry_window=5) as state:
        assert state.heartbeat("multi-host") is not None

    engine = create_engine(url, application_name="agents_pipeline:test")   # the Dagster resource, the CLI
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one() is False
    finally:
        engine.dispose()

    dagster_url = storage_url(url, "dagster")               # dagster-postgres' postgres_url
    storage = DagsterPostgresStorage(dagster_url)
    try:
        assert storage.run_storage.get_runs() == []         # tables made on the primary, read back
    finally:
        for part in (storage.run_storage, storage.event_log_storage, storage.schedule_storage):
            part.dispose()
    dagster_engine = sa.create_engine(dagster_url)
    try:
        with dagster_engine.connect() as conn:
            assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one() is False
    finally:
        dagster_engine.dispose()

    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", url)
    monkeypatch.delenv("AGENTS_PIPELINE_API_DATABASE_URL", raising=False)
    api_kwargs = connect_kwargs(api_config.database_url())   # the API's own login, same servers
    assert api_kwargs["host"] == f"{standby.sockdir},{primary.sockdir}"
    assert api_kwargs["target_session_attrs"] == "read-write"
