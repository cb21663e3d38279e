"""Set-up shared by the benchmarks: a throwaway cluster home and a migrated database."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import psycopg2

from agents_pipeline.core import migrations, registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs


def throwaway_home(prefix: str) -> Path:
    """A folder for a benchmark's own cluster; as root, handed to the postgres user."""
    home = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    os.chmod(home, 0o755)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    return home


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
