"""Fixtures of the migration tests: a dirty legacy file and SQL helpers over the test database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline_tests.migration.legacy_files import make_legacy_file

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(autouse=True)
def import_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """sqlite_migration_job reads only inside AGENTS_PIPELINE_IMPORT_DIR: the tests' files are in tmp_path."""
    monkeypatch.setenv("AGENTS_PIPELINE_IMPORT_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def legacy_file(tmp_path: Path) -> Path:
    return make_legacy_file(tmp_path / "background_agents.db")


@pytest.fixture
def query(db_url: str) -> Callable[..., list[tuple]]:
    """Runs one SQL statement on the test database and returns all rows."""

    def run(statement: str, params: tuple = ()) -> list[tuple]:
        conn = psycopg2.connect(**connect_kwargs(db_url))
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                cur.execute(statement, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    return run


# The rows a migration produces, without surrogate keys or now() columns, for comparing runs.
SNAPSHOT_SQL = {
    "agents": "SELECT name, agent_type, status, paused, placeholder, config::text, last_seen, legacy_id "
              "FROM fleet.agents ORDER BY name",
    "heartbeats": "SELECT a.name, h.received_at, h.kind, h.message, h.payload::text, h.legacy_id FROM fleet.heartbeats h "
                  "JOIN fleet.agents a USING (agent_id) ORDER BY h.legacy_id",
    "perf_samples": "SELECT sampled_at, host, metric, value, unit, tags::text, legacy_id FROM fleet.perf_samples "
                    "ORDER BY legacy_id",
    "alerts": "SELECT alert_key, kind, severity, subject, details::text, opened_at, resolved_at, imported, legacy_id "
              "FROM fleet.alerts ORDER BY legacy_id",
    "conversations": "SELECT conversation_id, run_id, prompt, response, prompt_tokens, cost, latency_ms, created_at, "
                     "metadata::text, langsmith_sent_at, legacy_id FROM fleet.llm_conversations ORDER BY legacy_id",
    "help": "SELECT requested_by, question, context::text, status, answer, created_at, legacy_id "
            "FROM fleet.help_requests ORDER BY legacy_id",
    "kv": "SELECT key, value::text, version, updated_by, legacy_id FROM fleet.kv_store ORDER BY key",
    "messages": "SELECT message_type, payload::text, created_at, claimed_at, acked_at, legacy_id "
                "FROM fleet.agent_messages ORDER BY legacy_id",
    "config": "SELECT key, value::text, description, legacy_id FROM fleet.system_config WHERE legacy_id IS NOT NULL ORDER BY key",
    "rejects": "SELECT table_name, legacy_id, reason, original::text, types::text FROM fleet.legacy_rejects "
               "ORDER BY table_name, legacy_id",
    "progress": "SELECT table_name, last_rowid, rows_read, rows_written, rows_rejected, checksum "
                "FROM fleet.legacy_progress ORDER BY table_name",
}


def snapshot(query: Callable[..., list[tuple]], user_tables: tuple[str, ...] = ()) -> dict[str, list[tuple]]:
    out = {name: query(statement) for name, statement in SNAPSHOT_SQL.items()}
    for table in user_tables:
        quoted = '"' + table.replace('"', '""') + '"'
        out[table] = query(f"SELECT * FROM legacy.{quoted} ORDER BY 1")  # noqa: S608 - quoted fixture name
    return out
