"""Fixtures of the HTTP API tests: one test database and one server for the whole folder (each
takes a second or two to make), agents registered per test under names of their own, so the
tests stay independent. test_restart.py runs a server of its own on a cluster it may stop."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core import registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline.core.roles import roles
from agents_pipeline_tests import pg
from agents_pipeline_tests.api.server import ApiServer, start
from agents_pipeline_tests.security.conftest import role_url


@pytest.fixture(scope="package")
def api_db(pg_cluster: LocalCluster, pg_template: str) -> Iterator[str]:
    """A fresh database (with its database-level grants applied) shared by the folder's tests."""
    name = pg.fresh_database(pg_cluster, pg_template)
    url = pg_cluster.url(name)
    conn = psycopg2.connect(**connect_kwargs(url))
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT fleet.apply_security()")
    conn.close()
    yield url
    pg.drop_database(pg_cluster, name)


@pytest.fixture(scope="package")
def operator_db(api_db: str) -> Iterator[Database]:
    db = Database(api_db, maxconn=2, retry_window=5)
    yield db
    db.close()


@pytest.fixture(scope="package")
def api_server(api_db: str, pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    log_path = Path(tmp_path_factory.mktemp("api")) / "server.log"
    server = start(role_url(api_db, pg_cluster, roles().api), log_path)
    yield server
    server.stop()


@pytest.fixture
def new_agent(operator_db: Database) -> Callable[..., registry.Registration]:
    """Registers an agent with a unique name (prefix ``name``)."""
    def make(name: str = "agent", **kwargs) -> registry.Registration:
        return registry.register_agent(operator_db, f"{name}-{uuid.uuid4().hex[:8]}", **kwargs)

    return make


def query(db: Database, sql: str, params: tuple = ()) -> list[tuple]:
    def work(cur):
        cur.execute(sql, params)
        return [tuple(r) for r in cur.fetchall()]

    return db.transaction(work)
