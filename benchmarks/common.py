"""Set-up shared by the benchmarks: a migrated database with its agents registered."""

from __future__ import annotations

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
    for path in migrations.available():
        if path.version <= version:
            shutil.copy(path.path, folder / path.path.name)
    return folder
