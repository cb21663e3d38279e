"""The heartbeats the archival benchmark archives: N rows spread over D days, loaded with one
INSERT ... SELECT per day, and the one-statement helper the benchmark's other modules share.

Split from archival.py so that the load (minutes at 10 M rows) can be read and changed apart
from the measurement it prepares.
"""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg2

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.defs.retention.policy import utc_today


def sql(url: str, query: str, params=None):
    conn = psycopg2.connect(**connect_kwargs(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def load(url: str, rows: int, days: int) -> None:
    today = utc_today()
    first = today - timedelta(days=days)
    sql(url, "SELECT fleet.ensure_partitions('heartbeats', %s, %s)", (first, today + timedelta(days=7)))
    per_day = rows // days
    started = time.perf_counter()
    for i in range(days):
        day = first + timedelta(days=i)
        sql(url, """
            INSERT INTO fleet.heartbeats (agent_id, received_at, sent_at, kind, message, payload)
            SELECT g %% 100 + 1, %s::timestamptz + make_interval(secs => g * 86399.0 / %s),
                   %s::timestamptz + make_interval(secs => g * 86399.0 / %s - 0.2),
                   CASE WHEN g %% 500 = 0 THEN 'fail' ELSE 'ok' END,
                   CASE WHEN g %% 50 = 0 THEN 'processed batch ' || g END,
                   CASE WHEN g %% 10 = 0 THEN jsonb_build_object('queue', g %% 17, 'ms', g %% 997) END
            FROM generate_series(0, %s - 1) g""",
            (f"{day} 00:00:00+00", per_day, f"{day} 00:00:00+00", per_day, per_day))
        print(f"  loaded {day}: {per_day} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    sql(url, "ANALYZE fleet.heartbeats")
