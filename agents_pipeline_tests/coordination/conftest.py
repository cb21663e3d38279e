"""Fixtures of the task tests: agents registered with their own database logins, each reached as
that login with its token (as an agent host would), and the operator's view of the tables."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg2
import pytest

from agents_pipeline.core import registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline.core.registry import token_proof
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline_tests.security.conftest import role_url


@dataclass
class Fleet:
    """Registers agents and opens their SharedState as their own login (rate limits apply)."""

    db_url: str
    database: Database
    cluster: LocalCluster
    logins: dict[str, tuple[str, str]] = field(default_factory=dict)   # name -> (url, token)
    opened: list[SharedState] = field(default_factory=list)

    def register(self, name: str, capabilities: tuple[str, ...] = (), *, period_s: float = 3600,
                 grace_s: float = 60) -> tuple[str, str]:
        reg = registry.register_agent(self.database, name, period_s=period_s, grace_s=grace_s)
        assert reg.login, "the test cluster's superuser makes each agent a login of its own"
        if capabilities:
            registry.set_capabilities(self.database, name, capabilities)
        self.logins[name] = (role_url(self.db_url, self.cluster, reg.login), reg.token)
        return self.logins[name]

    def agent(self, name: str, capabilities: tuple[str, ...] = (), **kwargs) -> SharedState:
        url, token = self.logins.get(name) or self.register(name, capabilities, **kwargs)
        state = SharedState(url, agent=name, token=token, maxconn=2, retry_window=5)
        self.opened.append(state)
        return state

    def refusals_missed(self, name: str, cases: list[tuple[str, tuple, str]]) -> list[str]:
        """Runs each (statement, params, message) as agent ``name``'s own login with its proof in
        the startup packet, around the client library; returns each statement the server did not
        refuse with that message."""
        url, token = self.register(name)
        conn = psycopg2.connect(**connect_kwargs(url), options=f"-c agents_pipeline.proof={token_proof(token).hex()}")
        wrong = []
        try:
            for statement, params, message in cases:
                try:
                    with conn.cursor() as cur:
                        cur.execute(statement, params)
                    wrong.append(f"accepted: {statement[:90]}")
                except psycopg2.Error as exc:
                    if message not in str(exc):
                        wrong.append(f"{statement[:90]}: {str(exc).splitlines()[0]}")
                conn.rollback()
        finally:
            conn.close()
        return wrong

    def sql(self, statement: str, params: tuple = ()) -> list[tuple]:
        """As the operator, in its own transaction."""
        conn = psycopg2.connect(**connect_kwargs(self.db_url))
        try:
            with conn, conn.cursor() as cur:
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()


@pytest.fixture
def fleet(db_url: str, database: Database, pg_cluster: LocalCluster) -> Iterator[Fleet]:
    f = Fleet(db_url, database, pg_cluster)
    yield f
    for state in f.opened:
        state.close()
