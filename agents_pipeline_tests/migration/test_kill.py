"""kill -9 at named points, then a re-run: the result equals an uninterrupted run."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agents_pipeline.defs.migration.loader import KILL_ENV
from agents_pipeline.defs.migration.runner import migrate_sqlite
from agents_pipeline_tests.migration.conftest import snapshot
from agents_pipeline_tests.migration.legacy_files import HOSTILE, make_legacy_file

BATCH = 7


def _bigger_file(path: Path) -> Path:
    make_legacy_file(path)
    conn = sqlite3.connect(path)
    conn.executemany("INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata) VALUES (?, ?, ?, ?)",
                     [("alpha" if i % 3 else "late_agent", f"2025-01-{1 + i % 28:02d}T{i % 24:02d}:00:00", "healthy",
                       f'{{"i": {i}}}') for i in range(60)])
    conn.executemany("INSERT INTO llm_conversations (conversation_id, agent_id, prompt, response, created_at) "
                     "VALUES (?, 'alpha', ?, 'r', ?)", [(f"k{i}", f"p{i}", f"2025-01-05T00:00:{i:02d}") for i in range(12)])
    conn.commit()
    conn.close()
    return path


def _run_cli(path: Path, db_url: str, kill_at: str | None, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": db_url, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    return subprocess.run([sys.executable, "-m", "agents_pipeline.cli.main", "migrate-sqlite", str(path), "--json",
                           "--accept-rejects", "--batch-size", str(BATCH), *extra], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def reference(pg_cluster, pg_template, tmp_path_factory) -> dict:
    """The uninterrupted run's result, computed once for the module."""
    from agents_pipeline_tests import pg

    name = pg.fresh_database(pg_cluster, pg_template)
    url = pg_cluster.url(name)
    path = _bigger_file(tmp_path_factory.mktemp("ref") / "background_agents.db")
    assert migrate_sqlite(path, url, batch_size=BATCH).ok
    import psycopg2

    from agents_pipeline.core.dsn import connect_kwargs

    def query(statement: str, params: tuple = ()) -> list[tuple]:
        conn = psycopg2.connect(**connect_kwargs(url))
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                cur.execute(statement, params)
                return cur.fetchall()
        finally:
            conn.close()

    result = snapshot(query, (HOSTILE,))
    pg.drop_database(pg_cluster, name)
    return result


@pytest.mark.parametrize("kill_at", [
    pytest.param("after_commit:agents:1", marks=pytest.mark.slow),  # agents half done, no placeholders yet
    "before_commit:agent_heartbeats:3",                              # a COPY sent but not committed
    pytest.param("after_commit:agent_heartbeats:5", marks=pytest.mark.slow),  # between batches
    "before_commit:llm_conversations:4",                             # staged insert with a conflict ahead
    pytest.param(f"before_commit:{HOSTILE}:1", marks=pytest.mark.slow),  # the user table, mid-copy
])
def test_killed_run_resumes_to_the_same_result(kill_at, tmp_path, db_url, query, reference):
    path = _bigger_file(tmp_path / "background_agents.db")
    killed = _run_cli(path, db_url, kill_at)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _run_cli(path, db_url, None)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert snapshot(query, (HOSTILE,)) == reference


def test_killed_side_by_side_run_resumes_to_the_same_result(tmp_path, db_url, query, reference):
    """Regression: with worker processes, a killed coordinator must not leave an orphan worker
    committing a batch that the resumed run loads again (duplicate heartbeats)."""
    path = _bigger_file(tmp_path / "background_agents.db")
    killed = _run_cli(path, db_url, "before_commit:agent_heartbeats:4", "--side-by-side")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = _run_cli(path, db_url, None, "--side-by-side")
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert "side by side" not in resumed.stdout  # --json: the report only
    assert snapshot(query, (HOSTILE,)) == reference
