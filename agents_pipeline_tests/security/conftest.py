"""Fixtures of the security tests: the fresh test database as seen by each role."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest

from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs, make_url
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline.core.registry import register_agent
from agents_pipeline.core.roles import Roles, roles


def role_url(db_url: str, cluster: LocalCluster, user: str) -> str:
    """The same database over the cluster's Unix socket (trust auth) as another login."""
    dbname = str(connect_kwargs(db_url)["dbname"])
    return make_url(dbname, user=user, host=str(cluster.sockdir), port=int(cluster.state()["port"]))


@pytest.fixture
def names() -> Roles:
    return roles()


@pytest.fixture
def secured_url(db_url: str) -> str:
    """The fresh database with its database-level privileges applied: CREATE DATABASE ...
    TEMPLATE copies the schema but not the database's own ACL, as a restore would not."""
    conn = psycopg2.connect(**connect_kwargs(db_url))
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT fleet.apply_security()")
    finally:
        conn.close()
    return db_url


@pytest.fixture
def agent_url(secured_url: str, pg_cluster: LocalCluster, names: Roles) -> str:
    return role_url(secured_url, pg_cluster, names.agent)


@pytest.fixture
def agent_conn(agent_url: str) -> Iterator[psycopg2.extensions.connection]:
    """A raw connection as the agent login, autocommit, for attempting forbidden things."""
    conn = psycopg2.connect(**connect_kwargs(agent_url))
    conn.autocommit = True
    yield conn
    conn.close()


@pytest.fixture
def two_agents(database: Database) -> dict[str, str]:
    """Two registered agents and their tokens (registered with the operator's login)."""
    return {name: register_agent(database, name).token for name in ("alpha", "bravo")}
