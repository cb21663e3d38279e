"""Real PostgreSQL servers for the tests: started here, in temporary folders, on free ports.

As root the server runs as the ``postgres`` user (PostgreSQL refuses root), so the folders
are made under /tmp and handed to that user.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, scratch_home

# A zone with an odd offset, so that any code that assumes UTC shows up in the tests.
SERVER_TIMEZONE = "Pacific/Chatham"


@contextmanager
def running_cluster(prefix: str = "ap-test-pg-", settings: tuple[str, ...] = ()) -> Iterator[LocalCluster]:
    cluster = LocalCluster(scratch_home(prefix), extra_settings=(
        f"timezone='{SERVER_TIMEZONE}'", "fsync=off", "synchronous_commit=off",
        "full_page_writes=off", *settings))
    cluster.up()
    try:
        yield cluster
    finally:
        cluster.destroy()


def admin_connect(cluster: LocalCluster, dbname: str = "postgres"):
    conn = psycopg2.connect(**connect_kwargs(cluster.url(dbname)))
    conn.autocommit = True
    return conn


def create_template(cluster: LocalCluster, name: str = "ap_template") -> str:
    """A database with every migration applied, copied per test (CREATE DATABASE ... TEMPLATE)."""
    conn = admin_connect(cluster)
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    mconn = psycopg2.connect(**connect_kwargs(cluster.url(name)))
    try:
        migrations.migrate(mconn)
    finally:
        mconn.close()
    return name


def _create_database(cluster: LocalCluster, name: str, template: str | None = None) -> str:
    conn = admin_connect(cluster)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    conn.close()
    return name


def fresh_database(cluster: LocalCluster, template: str) -> str:
    return _create_database(cluster, f"t_{uuid.uuid4().hex[:12]}", template)


def empty_database(cluster: LocalCluster, prefix: str) -> str:
    """A database with nothing in it (no template): for Dagster's storage, a restore, a first migrate."""
    return _create_database(cluster, f"{prefix}_{uuid.uuid4().hex[:10]}")


def drop_database(cluster: LocalCluster, name: str) -> None:
    """Drops the database and the agents' own logins made in it (roles outlive databases)."""
    conn = admin_connect(cluster)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT oid FROM pg_database WHERE datname = %s", (name,))
        row = cur.fetchone()
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if row is not None:
            cur.execute("SELECT rolname FROM pg_roles WHERE rolname ~ %s", (rf"_a{row[0]}_\d+$",))
            for (role,) in cur.fetchall():
                cur.execute(f'DROP ROLE IF EXISTS "{role}"')
    conn.close()
