"""Fixtures of the help tests: a loaded knowledge base and a small fleet written directly."""

from __future__ import annotations

import pytest

from agents_pipeline.core.settings import PROJECT_DIR
from agents_pipeline.defs.help.corpus import load_corpus
from agents_pipeline.defs.help.knowledge import sync_passages


@pytest.fixture
def knowledge(database):
    """The project's docs in the knowledge base."""
    return sync_passages(database, load_corpus(PROJECT_DIR))


def add_agent(database, name: str, status: str = "up", *, since: str = "5 minutes", message: str | None = None,
              period_s: int = 60, grace_s: int = 30) -> int:
    """An agent row with a status set directly (as the health evaluator would)."""
    def work(cur):
        cur.execute(
            """INSERT INTO fleet.agents (name, status, status_since, status_message, period, grace, last_seen)
               VALUES (%s, %s, now() - %s::interval, %s, make_interval(secs => %s), make_interval(secs => %s),
                       now() - %s::interval - interval '90 seconds')
               RETURNING agent_id""", (name, status, since, message, period_s, grace_s, since))
        return cur.fetchone()[0]

    return database.transaction(work)


def run_sql(database, sql: str, params=()):
    def work(cur):
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else cur.rowcount

    return database.transaction(work)
