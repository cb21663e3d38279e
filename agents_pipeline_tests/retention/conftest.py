"""Fixtures for the retention tests: old days of data with awkward values, an archive folder."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.retention.policy import utc_today

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
