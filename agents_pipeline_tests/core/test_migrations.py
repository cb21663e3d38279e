"""Schema migrations: ordered, recorded, idempotent, and loud about edited files."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import ConfigurationError

CATALOG = """
SELECT 'table:' || tablename FROM pg_tables WHERE schemaname = 'fleet'
UNION ALL SELECT 'index:' || indexname || ':' || indexdef FROM pg_indexes WHERE schemaname = 'fleet'
UNION ALL SELECT 'function:' || p.oid::regprocedure::text || ':' || md5(p.prosrc)
          FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'fleet'
UNION ALL SELECT 'column:' || table_name || '.' || column_name || ':' || data_type
          FROM information_schema.columns WHERE table_schema = 'fleet'
UNION ALL SELECT 'migration:' || version || ':' || checksum FROM public.agents_pipeline_migrations
ORDER BY 1
"""


def _catalog(url: str) -> list[str]:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute(CATALOG)
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


def _migrate(url: str, sql_dir: Path | None = None) -> list[str]:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        return migrations.migrate(conn, sql_dir) if sql_dir else migrations.migrate(conn)
    finally:
        conn.close()


def test_applying_twice_changes_nothing(db_url: str) -> None:
    before = _catalog(db_url)
    assert _migrate(db_url) == []
    assert _migrate(db_url) == []
    assert _catalog(db_url) == before
    assert any(item.startswith("table:agents") for item in before)
    assert f"migration:{migrations.latest_version()}" in " ".join(before)


def test_fresh_database_gets_every_migration_in_order(pg_cluster, tmp_path: Path) -> None:
    from agents_pipeline_tests import pg

    name = pg.fresh_database(pg_cluster, "template0")
    try:
        url = pg_cluster.url(name)
        applied = _migrate(url)
        expected = [m.path.name for m in migrations.available()]
        functions = [f"functions/{name}" for name in migrations.function_files(migrations.SQL_DIR / "functions")]
        assert applied == expected + functions
        assert len(functions) >= 10
        conn = psycopg2.connect(**connect_kwargs(url))
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM public.agents_pipeline_migrations ORDER BY applied_at, version")
            assert [r[0] for r in cur.fetchall()] == [m.version for m in migrations.available()]
            # partitions exist ahead of time for today and the coming week
            cur.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'fleet.heartbeats'::regclass")
            assert cur.fetchone()[0] >= 8
        conn.close()
    finally:
        pg.drop_database(pg_cluster, name)


def test_edited_applied_migration_is_refused(db_url: str, tmp_path: Path) -> None:
    """Guards against silently skipping a changed migration that was already applied."""
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.available()[0].path.parent, sql_dir)
    first = sorted(sql_dir.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(ConfigurationError, match="changed after it was applied"):
        _migrate(db_url, sql_dir)


def test_failed_migration_rolls_back_whole_file(db_url: str, tmp_path: Path) -> None:
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.available()[0].path.parent, sql_dir)
    (sql_dir / "9999_broken.sql").write_text(
        "CREATE TABLE fleet.half_done (x int);\nSELECT no_such_function();\n")
    with pytest.raises(psycopg2.Error):
        _migrate(db_url, sql_dir)
    conn = psycopg2.connect(**connect_kwargs(db_url))
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('fleet.half_done'), "
                    "(SELECT count(*) FROM public.agents_pipeline_migrations WHERE version = 9999)")
        assert cur.fetchone() == (None, 0)
    conn.close()
