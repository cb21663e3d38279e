"""Set-up shared by the benchmarks: a migrated database with its agents registered."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import psycopg2

from agents_pipeline.core import migrations, registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs


def migration_cluster(work: Path):
    """A throwaway PostgreSQL under ``work`` tuned for bulk loads (the migration benchmarks'), started."""
    import os

    from agents_pipeline.core.localdb import LocalCluster

    home = work / "pg"
    home.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    cluster = LocalCluster(home, extra_settings=("max_wal_size='8GB'", "checkpoint_timeout='30min'",
                                                 "shared_buffers='256MB'", "timezone='UTC'"))
    cluster.up()
    return cluster


def settle(admin_url: str, wait_s: float = 300.0) -> None:
    """Before a timed load: no work left over from the loads before it. Every database is
    vacuumed and analyzed (what autovacuum would otherwise do on the previous load's millions of
    new rows, during the next one), a checkpoint writes the dirty buffers, and the call waits
    for autovacuum workers to finish. Without it whichever tool runs later pays for the ones
    before it (measured: the same baseline 9.2 s first, 13.1 s after a load)."""
    import time

    admin = psycopg2.connect(**connect_kwargs(admin_url))
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate")
            names = [r[0] for r in cur.fetchall()]
        for name in names:
            conn = psycopg2.connect(**{**connect_kwargs(admin_url), "dbname": name})
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    cur.execute("VACUUM (ANALYZE)")
            finally:
                conn.close()
        with admin.cursor() as cur:
            cur.execute("CHECKPOINT")
            deadline = time.monotonic() + wait_s
            while time.monotonic() < deadline:
                cur.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")
                if cur.fetchone()[0] == 0:
                    break
                time.sleep(0.5)
    finally:
        admin.close()


def prepare_database(url: str, agent_names: list[str]) -> None:
    """Migrates the database and registers ``agent_names``."""
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        migrations.migrate(conn)
    finally:
        conn.close()
    db = Database(url)
    try:
        for name in agent_names:
            registry.register_agent(db, name)
    finally:
        db.close()


def schema_before(version: int) -> Path:
    """A copy of sql/ holding the numbered migrations up to ``version`` and no function files:
    the schema as it was then, for a baseline measured in the same run as the current one."""
    folder = Path(tempfile.mkdtemp(prefix="ap-bench-sql-"))
    atexit.register(shutil.rmtree, folder, True)   # the benchmark's own scratch, gone when it ends
    for path in migrations.available():
        if path.version <= version:
            shutil.copy(path.path, folder / path.path.name)
    return folder
