"""sql/functions/: one home per function, re-applied when it changes, old signatures dropped,
and an existing database (tokens and all) upgraded in place."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import LockedError
from agents_pipeline.core.registry import token_proof
from agents_pipeline_tests import pg


def _run(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def _migrate(url: str, sql_dir: Path | None = None) -> list[str]:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        return migrations.migrate(conn, sql_dir or migrations.SQL_DIR)
    finally:
        conn.close()


def test_a_changed_function_file_is_applied_again_and_only_it(db_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, sql_dir)
    target = sql_dir / "functions" / "kv_access.sql"
    target.write_text(target.read_text().replace("SELECT starts_with", "SELECT /* edited */ starts_with"))
    assert _migrate(db_url, sql_dir) == ["functions/kv_access.sql"]
    assert _migrate(db_url, sql_dir) == []
    src = _run(db_url, "SELECT prosrc FROM pg_proc WHERE proname = 'kv_allowed'")[0][0]
    assert "/* edited */" in src
    stored = _run(db_url, "SELECT checksum FROM public.agents_pipeline_functions WHERE name = 'kv_access.sql'")
    assert stored[0][0] == hashlib.sha256(target.read_bytes()).hexdigest()


def test_a_broken_function_file_changes_nothing(db_url: str, tmp_path: Path) -> None:
    """All changed files go in one transaction with apply_security: a failure leaves none half-applied."""
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, sql_dir)
    (sql_dir / "functions" / "kv_access.sql").write_text(
        (sql_dir / "functions" / "kv_access.sql").read_text().replace("starts_with", "/* v2 */ starts_with"))
    (sql_dir / "functions" / "zz_broken.sql").write_text("CREATE FUNCTION fleet.broken() RETURNS int AS 'nope' LANGUAGE sql;")
    with pytest.raises(psycopg2.Error):
        _migrate(db_url, sql_dir)
    assert "/* v2 */" not in _run(db_url, "SELECT prosrc FROM pg_proc WHERE proname = 'kv_allowed'")[0][0]


def test_no_stale_agent_function_overload_is_left(db_url: str) -> None:
    """A changed signature drops the old one: the text-token versions of 0002 are gone."""
    rows = _run(db_url, """SELECT p.oid::regprocedure::text FROM pg_proc p
                           WHERE p.pronamespace = 'fleet'::regnamespace
                             AND p.proname IN ('record_heartbeats', 'kv_get', 'kv_set', 'send_message',
                                               'claim_messages', 'ack_message', 'record_conversation',
                                               'report_metrics', 'submit_help_request', 'get_help_request',
                                               'authenticate', 'token_hash')""")
    signatures = sorted(r[0] for r in rows)
    assert len(signatures) == 12, signatures
    assert all("bytea" in s for s in signatures), signatures


def test_new_functions_are_never_public(db_url: str) -> None:
    rows = _run(db_url, """SELECT p.proname FROM pg_proc p
                           WHERE p.pronamespace = 'fleet'::regnamespace
                             AND has_function_privilege('public', p.oid, 'EXECUTE')""")
    assert rows == []


def test_an_existing_database_upgrades_in_place(pg_cluster, tmp_path: Path) -> None:
    """A database at 0011 with a registered agent: after `db migrate` its old token still works
    (stored as a hash of the proof now), evaluate_health has one definition, and the function
    ledger lists every file."""
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    for path in migrations.SQL_DIR.glob("00*.sql"):
        if int(path.name[:4]) <= 11:
            shutil.copy(path, sql_dir / path.name)
    name = pg.fresh_database(pg_cluster, "template0")
    try:
        url = pg_cluster.url(name)
        _migrate(url, sql_dir)
        token = "apt_old-token-from-before"
        _run(url, "INSERT INTO fleet.agents (name, token_hash) VALUES ('veteran', sha256(convert_to(%s, 'UTF8')))",
             (token,))
        applied = _migrate(url)
        assert "0012_agent_boundary.sql" in applied and "functions/record_heartbeats.sql" in applied
        rows = _run(url, """SELECT error FROM fleet.record_heartbeats(ARRAY['veteran'], ARRAY[%s]::bytea[],
                               ARRAY['ok'], ARRAY[now()], ARRAY[NULL::text], ARRAY[NULL::jsonb])""",
                    (token_proof(token),))
        assert rows == [(None,)]
        stored = _run(url, "SELECT token_hash FROM fleet.agents WHERE name = 'veteran'")[0][0]
        assert bytes(stored) == hashlib.sha256(token_proof(token)).digest()
        assert bytes(stored) != token_proof(token)
        assert _run(url, "SELECT count(*) FROM pg_proc WHERE proname = 'evaluate_health'") == [(1,)]
    finally:
        pg.drop_database(pg_cluster, name)


def test_migrate_waits_a_bounded_time_and_names_the_holder(db_url: str, monkeypatch) -> None:
    """Guards against `db migrate` hanging for ever behind whoever holds its advisory lock."""
    holder = psycopg2.connect(**connect_kwargs(db_url))
    holder.autocommit = True
    try:
        with holder.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (migrations.LOCK_KEY,))
            pid = cur.fetchone()[1]
        monkeypatch.setattr(migrations, "LOCK_WAIT_S", 0.5)
        with pytest.raises(LockedError, match=f"process {pid}"):
            _migrate(db_url)
    finally:
        holder.close()
    assert _migrate(db_url) == []
