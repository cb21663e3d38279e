"""A loader's PostgreSQL session, the same for the coordinating run (``runner``) and for each
big table's worker process (``parallel``).

It lives apart from both so that each imports it and neither imports the other: the worker
process starts by importing only what it runs.
"""

from __future__ import annotations

import psycopg2

from agents_pipeline.core.dsn import connect_kwargs


class MigrationError(Exception):
    """The migration could not run (bad file, schema not current, another run in progress)."""


def connect(url: str):
    conn = psycopg2.connect(**connect_kwargs(url), application_name="agents_pipeline:migrate-sqlite")
    with conn, conn.cursor() as cur:
        cur.execute("SET TIME ZONE 'UTC'")
        # Each batch and its progress row commit atomically; a server crash can lose only the
        # last batches, which the next run then redoes. Worth it for per-batch commits.
        cur.execute("SET synchronous_commit = off")
        # Conversations carry multi-KB texts: lz4 compresses them several times faster than
        # the default pglz (falls back silently on a server built without lz4).
        cur.execute("SELECT set_config('default_toast_compression', 'lz4', false) FROM pg_settings "
                    "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)")
        cur.execute("SELECT to_regclass('fleet.legacy_progress')")
        if cur.fetchone()[0] is None:
            raise MigrationError("the database schema is not current: run `agents-pipeline db migrate` first")
    return conn
