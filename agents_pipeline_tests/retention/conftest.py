"""Fixtures for the retention tests: old days of data with awkward values, an archive folder."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.defs.retention.policy import utc_today

OLD_DAY = utc_today() - timedelta(days=45)


def execute(url: str, query: str, params=None) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute(query, params)
            rows = cur.fetchall() if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


def seed_heartbeats(url: str, day: date, n: int = 2000) -> None:
    """n heartbeats on ``day`` with NULLs, empty strings, newlines, quotes, unicode and jsonb."""
    execute(url, "SELECT fleet.ensure_partitions('heartbeats', %s, %s)", (day, day))
    execute(url, r"""
        INSERT INTO fleet.heartbeats (agent_id, received_at, sent_at, kind, message, payload)
        SELECT g %% 17 + 1,
               %s::timestamptz + make_interval(secs => g * 86399.0 / %s + g * 0.000001),
               CASE WHEN g %% 5 = 0 THEN NULL ELSE %s::timestamptz + make_interval(secs => g) END,
               (ARRAY['ok','start','fail','log'])[g %% 4 + 1],
               CASE g %% 6 WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'line\nnext\ttab "q" \\ back'
                          WHEN 3 THEN 'ünïcødé ✓ ' || g WHEN 4 THEN 'a,b,"c"' ELSE repeat('x', g %% 300) END,
               CASE WHEN g %% 3 = 0 THEN NULL
                    ELSE jsonb_build_object('n', g, 'f', g / 7.0, 's', E'q"\\\n', 'arr', jsonb_build_array(1, 'two', NULL)) END
        FROM generate_series(1, %s) g""", (f"{day} 00:00:00+00", n, f"{day} 00:00:00+00", n))


def rows_of(url: str, query: str, params=None) -> list[tuple]:
    return sorted(execute(url, query, params), key=repr)


@pytest.fixture
def archive_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "archive"
    monkeypatch.setenv("AGENTS_PIPELINE_ARCHIVE_DIR", str(root))
    monkeypatch.delenv("AGENTS_PIPELINE_RETENTION", raising=False)
    return root


def seed_history(url: str, day: date) -> None:
    """Rows of every 400-day table on ``day``: identity keys, uuid, numeric, text[], NULL agent ids,
    a resolved alert with notifications and an open one (which must stay)."""
    ts = f"{day} 06:00:00+00"
    execute(url, "INSERT INTO fleet.agents (name) VALUES ('hist-a'), ('hist-b') ON CONFLICT DO NOTHING")
    execute(url, """
        INSERT INTO fleet.status_changes (agent_id, from_status, to_status, changed_at, noticed_at, reason, message)
        SELECT a.agent_id, 'up', 'down', %s::timestamptz + make_interval(mins => g), %s::timestamptz + make_interval(mins => g, secs => 3.5),
               CASE WHEN g %% 2 = 0 THEN NULL ELSE 'late' END, E'tab\\there'
        FROM fleet.agents a, generate_series(1, 50) g WHERE a.name LIKE 'hist-%%'""", (ts, ts))
    execute(url, """
        INSERT INTO fleet.perf_rollups (hour, host, agent_id, metric, samples, min_value, mean_value, p50_value, p95_value, max_value)
        SELECT %s::timestamptz + make_interval(hours => h), 'host-1', CASE WHEN h %% 2 = 0 THEN NULL ELSE 1 END, m,
               60, 0.1, 1.0 / 3, 2.5e-300, 1e300, 'NaN'::float8
        FROM generate_series(0, 15) h, unnest(ARRAY['cpu','rss']) m""", (f"{day} 00:00:00+00",))
    execute(url, """
        INSERT INTO fleet.llm_runs (run_id, trace_id, project, agent_id, name, start_time, end_time, total_cost, tags, extra, total_tokens)
        SELECT md5('run' || g)::uuid, NULL, 'proj', NULL, 'run ' || g, %s::timestamptz + make_interval(secs => g * 7.25),
               %s::timestamptz + make_interval(secs => g * 8), 0.000123456789012345678 * g, ARRAY['a', 'b,c', NULL, E'q"'],
               jsonb_build_object('k', g), g * 100
        FROM generate_series(1, 40) g""", (ts, ts))
    execute(url, """
        INSERT INTO fleet.alerts (alert_key, kind, subject, opened_at, resolved_at, details)
        VALUES ('agent_down:1', 'agent_down', 'resolved one', %s, %s::timestamptz + interval '1 hour', '{"x": [1, 2]}'),
               ('agent_down:2', 'agent_down', 'still open', %s, NULL, '{}')""", (ts, ts, ts))
    execute(url, """
        INSERT INTO fleet.notifications (alert_id, event, channel, idempotency_key, payload, created_at)
        SELECT alert_id, e, 'log', alert_key || ':' || e, jsonb_build_object('e', e), opened_at
        FROM fleet.alerts, unnest(ARRAY['opened', 'resolved']) e""")


HISTORY_QUERIES = {
    "status_changes": "SELECT * FROM fleet.status_changes",
    "perf_rollups": "SELECT hour, host, agent_id, metric, samples, min_value, mean_value, p50_value, p95_value, max_value::text, computed_at FROM fleet.perf_rollups",
    "llm_runs": "SELECT run_id, project, start_time, end_time, total_cost::text, tags, extra::text, total_tokens, fetched_at FROM fleet.llm_runs",
    "alerts": "SELECT alert_id, alert_key, subject, opened_at, resolved_at, details::text FROM fleet.alerts",
    "notifications": "SELECT notification_id, alert_id, event, idempotency_key, payload::text, created_at FROM fleet.notifications",
}
