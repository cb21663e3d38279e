"""The sync's SQL: cursors, the versioned upsert of a page of runs, and pending runs.

Every function takes the caller's connection so that the rows of a slice and the cursor
that covers them commit together, or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

CURSOR_PREFIX = "langsmith:"

# One statement per page: the page arrives as a JSON array and is expanded set-wise.
# Agent attribution, in order: what the run says (metadata/tag), what its trace root says
# (already stored), the project -> agent mapping. The WHERE of ON CONFLICT is the precedence
# rule (fleet.llm_run_version, see sql/0005): a version that is not newer never overwrites,
# and a re-read of an unchanged run (same version, same content hash, same agent) writes nothing.
UPSERT_PAGE = sa.text("""
WITH page AS (
    SELECT r.*, coalesce(r.agent_name, root.agent_name, r.project_agent) AS resolved_agent
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        run_id uuid, trace_id uuid, parent_run_id uuid, project text, name text, run_type text,
        status text, start_time timestamptz, end_time timestamptz, model text, prompt_tokens bigint,
        completion_tokens bigint, total_tokens bigint, total_cost numeric, error text, tags text[],
        extra jsonb, content_hash text, agent_name text, project_agent text)
    LEFT JOIN fleet.llm_runs root ON root.run_id = r.trace_id AND root.run_id <> r.run_id
)
INSERT INTO fleet.llm_runs AS cur (
    run_id, trace_id, parent_run_id, project, agent_id, agent_name, name, run_type, status,
    start_time, end_time, model, prompt_tokens, completion_tokens, total_tokens, total_cost,
    error, tags, extra, content_hash, fetched_at)
SELECT p.run_id, p.trace_id, p.parent_run_id, p.project, a.agent_id, p.resolved_agent, p.name,
       p.run_type, p.status, p.start_time, p.end_time, p.model, p.prompt_tokens,
       p.completion_tokens, p.total_tokens, p.total_cost, p.error, p.tags,
       coalesce(p.extra, '{}'::jsonb), p.content_hash, now()
FROM page p
LEFT JOIN fleet.agents a ON a.name = p.resolved_agent
ON CONFLICT (run_id) DO UPDATE SET
    trace_id = EXCLUDED.trace_id, parent_run_id = EXCLUDED.parent_run_id, project = EXCLUDED.project,
    agent_id = EXCLUDED.agent_id, agent_name = EXCLUDED.agent_name, name = EXCLUDED.name,
    run_type = EXCLUDED.run_type, status = EXCLUDED.status, start_time = EXCLUDED.start_time,
    end_time = EXCLUDED.end_time, model = EXCLUDED.model, prompt_tokens = EXCLUDED.prompt_tokens,
    completion_tokens = EXCLUDED.completion_tokens, total_tokens = EXCLUDED.total_tokens,
    total_cost = EXCLUDED.total_cost, error = EXCLUDED.error, tags = EXCLUDED.tags,
    extra = EXCLUDED.extra, content_hash = EXCLUDED.content_hash, fetched_at = now()
WHERE fleet.llm_run_version(EXCLUDED.status, EXCLUDED.end_time, EXCLUDED.total_tokens, EXCLUDED.total_cost)
        > fleet.llm_run_version(cur.status, cur.end_time, cur.total_tokens, cur.total_cost)
   OR (fleet.llm_run_version(EXCLUDED.status, EXCLUDED.end_time, EXCLUDED.total_tokens, EXCLUDED.total_cost)
        = fleet.llm_run_version(cur.status, cur.end_time, cur.total_tokens, cur.total_cost)
       AND (EXCLUDED.content_hash, EXCLUDED.agent_name, EXCLUDED.agent_id)
           IS DISTINCT FROM (cur.content_hash, cur.agent_name, cur.agent_id))
RETURNING (xmax = 0) AS inserted
""")


@dataclass
class Cursor:
    """How far a project is read: every run that started before ``high_water`` has been seen."""

    project: str
    high_water: datetime | None
    project_id: str | None = None
    last_success_at: datetime | None = None

    @property
    def name(self) -> str:
        return CURSOR_PREFIX + self.project


def lock_project(conn: sa.Connection, project: str) -> None:
    """Serialises syncs of one project (schedule and backfill) for this transaction."""
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                 {"k": CURSOR_PREFIX + project})


def read_cursor(conn: sa.Connection, project: str) -> Cursor:
    row = conn.execute(sa.text("SELECT cursor FROM fleet.sync_cursors WHERE name = :n"),
                       {"n": CURSOR_PREFIX + project}).first()
    doc: dict[str, Any] = row.cursor if row else {}
    return Cursor(
        project=project,
        high_water=_parse(doc.get("high_water")),
        project_id=doc.get("project_id"),
        last_success_at=_parse(doc.get("last_success_at")),
    )


def write_cursor(conn: sa.Connection, cursor: Cursor, *, runs_written: int) -> None:
    """Moves the cursor forward only (a backfill or a slow concurrent sync never rewinds it)."""
    doc = {"high_water": cursor.high_water.isoformat() if cursor.high_water else None,
           "project_id": cursor.project_id, "last_success_at": _now(conn).isoformat(),
           "last_runs_written": runs_written}
    conn.execute(sa.text("""
        INSERT INTO fleet.sync_cursors (name, cursor, updated_at) VALUES (:n, CAST(:c AS jsonb), now())
        ON CONFLICT (name) DO UPDATE SET
            cursor = CASE WHEN (fleet.sync_cursors.cursor->>'high_water')::timestamptz
                               > (EXCLUDED.cursor->>'high_water')::timestamptz
                          THEN EXCLUDED.cursor || jsonb_build_object('high_water', fleet.sync_cursors.cursor->'high_water')
                          ELSE EXCLUDED.cursor END,
            updated_at = now()"""), {"n": cursor.name, "c": json.dumps(doc)})


def upsert_page(conn: sa.Connection, rows: list[dict[str, Any]]) -> tuple[int, int]:
    """Applies one page; returns (inserted, updated). Duplicates within the page keep the newest."""
    if not rows:
        return 0, 0
    result = conn.execute(UPSERT_PAGE, {"rows": json.dumps(_dedupe(rows))}).all()
    inserted = sum(1 for r in result if r.inserted)
    return inserted, len(result) - inserted


def pending_runs(conn: sa.Connection, project: str, before: datetime, not_before: datetime,
                 limit: int) -> list[tuple[str, datetime]]:
    """Runs stored as unfinished that started before the re-read window (so it will not see them)."""
    rows = conn.execute(sa.text("""
        SELECT run_id::text, start_time FROM fleet.llm_runs
        WHERE project = :p AND end_time IS NULL AND coalesce(status, 'pending') NOT IN ('success', 'error')
          AND start_time < :before AND start_time >= :not_before
        ORDER BY start_time LIMIT :limit"""),
        {"p": project, "before": before, "not_before": not_before, "limit": limit}).all()
    return [(r[0], r[1]) for r in rows]


def count_stale_pending(conn: sa.Connection, project: str, not_before: datetime) -> int:
    return conn.execute(sa.text("""
        SELECT count(*) FROM fleet.llm_runs
        WHERE project = :p AND end_time IS NULL AND coalesce(status, 'pending') NOT IN ('success', 'error')
          AND start_time < :nb"""), {"p": project, "nb": not_before}).scalar_one()


def _version(row: dict[str, Any]) -> tuple:
    finished = row.get("end_time") is not None or row.get("status") in ("success", "error")
    return (finished, row.get("end_time") or "", row.get("total_tokens") or -1,
            float(row.get("total_cost") or -1))


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        old = best.get(row["run_id"])
        if old is None or _version(row) >= _version(old):
            best[row["run_id"]] = row
    return list(best.values())


def _parse(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _now(conn: sa.Connection) -> datetime:
    return conn.execute(sa.text("SELECT now()")).scalar_one()
