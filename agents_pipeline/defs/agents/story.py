"""One agent's story, read for a batch of agents at once: what an operator asks first.

Status changes with their reasons, gaps between heartbeats, CPU and memory by hour, LLM tokens
and cost by day, open alerts and tasks. Every query takes a list of agent ids and bounds what
it returns per agent (window functions), so refreshing 200 agents is a handful of statements,
not 200 round trips each. Plain SQL over the tables: this domain imports no other domain.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

STATUS_CHANGES = 20
GAPS = 10
GAP_WINDOW_H = 6
HOURS = 24
DAYS = 14
TASKS = 20


@dataclass
class AgentStory:
    agent_id: int
    name: str
    status: str
    status_since: datetime | None
    last_seen: datetime | None
    period_s: float
    grace_s: float
    status_changes: list[dict[str, Any]] = field(default_factory=list)
    heartbeat_gaps: list[dict[str, Any]] = field(default_factory=list)
    hourly: list[dict[str, Any]] = field(default_factory=list)
    llm_days: list[dict[str, Any]] = field(default_factory=list)
    open_alerts: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)


_AGENTS = sa.text("""
    SELECT agent_id, name, status, status_since, last_seen, extract(epoch FROM period)::float8 AS period_s,
           extract(epoch FROM grace)::float8 AS grace_s
    FROM fleet.agents WHERE agent_id = ANY(:ids) ORDER BY name""")

_STATUS = sa.text("""
    SELECT agent_id, changed_at, from_status, to_status, reason, message FROM (
        SELECT s.*, row_number() OVER (PARTITION BY agent_id ORDER BY changed_at DESC) AS n
        FROM fleet.status_changes s WHERE agent_id = ANY(:ids)) x
    WHERE n <= :limit ORDER BY agent_id, changed_at DESC""")

# A gap is a silence longer than the agent's period + grace, measured between heartbeats.
_GAPS = sa.text("""
    WITH h AS (
        SELECT agent_id, received_at,
               received_at - lag(received_at) OVER (PARTITION BY agent_id ORDER BY received_at) AS gap
        FROM fleet.heartbeats WHERE agent_id = ANY(:ids) AND received_at >= now() - make_interval(hours => :window_h)
    ), g AS (
        SELECT h.agent_id, h.received_at - h.gap AS silent_from, h.received_at AS heard_again,
               extract(epoch FROM h.gap)::float8 AS seconds,
               row_number() OVER (PARTITION BY h.agent_id ORDER BY h.received_at DESC) AS n,
               count(*) OVER (PARTITION BY h.agent_id) AS total
        FROM h JOIN fleet.agents a USING (agent_id) WHERE h.gap > a.period + a.grace
    )
    SELECT agent_id, silent_from, heard_again, seconds, total
    FROM g WHERE n <= :limit ORDER BY agent_id, heard_again DESC""")

_HOURLY = sa.text("""
    SELECT agent_id, hour,
           max(p95_value) FILTER (WHERE metric = 'cpu_percent') AS p95_cpu_percent,
           max(max_value) FILTER (WHERE metric = 'cpu_percent') AS max_cpu_percent,
           max(p95_value) FILTER (WHERE metric = 'rss_bytes') / 1048576.0 AS p95_rss_mib,
           max(max_value) FILTER (WHERE metric = 'rss_bytes') / 1048576.0 AS max_rss_mib
    FROM fleet.perf_rollups
    WHERE agent_id = ANY(:ids) AND hour >= date_trunc('hour', now()) - make_interval(hours => :hours)
      AND metric IN ('cpu_percent', 'rss_bytes')
    GROUP BY agent_id, hour ORDER BY agent_id, hour DESC""")

_LLM = sa.text("""
    SELECT a.agent_id, u.day, sum(u.runs)::int AS runs, sum(u.errors)::int AS errors,
           sum(u.prompt_tokens + u.completion_tokens)::bigint AS tokens, sum(u.total_cost)::float8 AS cost_usd
    FROM fleet.llm_usage_daily u JOIN fleet.agents a ON a.name = u.agent
    WHERE a.agent_id = ANY(:ids) AND u.day >= (now() AT TIME ZONE 'UTC')::date - :days
    GROUP BY a.agent_id, u.day ORDER BY a.agent_id, u.day DESC""")

_ALERTS = sa.text("""
    SELECT agent_id, opened_at, kind, severity, subject FROM fleet.alerts
    WHERE agent_id = ANY(:ids) AND resolved_at IS NULL ORDER BY agent_id, opened_at DESC""")

_TASKS = sa.text("""
    SELECT agent_id, task_id, kind, state, attempts, created_at, finished_at, last_error FROM (
        SELECT t.*, coalesce(t.claimed_by, t.submitted_by) AS agent_id,
               row_number() OVER (PARTITION BY coalesce(t.claimed_by, t.submitted_by)
                                  ORDER BY t.task_id DESC) AS n
        FROM fleet.tasks t WHERE t.claimed_by = ANY(:ids) OR t.submitted_by = ANY(:ids)) x
    WHERE n <= :limit ORDER BY agent_id, task_id DESC""")


def _has_table(conn: sa.Connection, name: str) -> bool:
    return conn.execute(sa.text("SELECT to_regclass(:n) IS NOT NULL"), {"n": name}).scalar_one()


def _group(conn: sa.Connection, query: sa.TextClause, params: dict) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in conn.execute(query, params).mappings():
        values = dict(row)
        out[values.pop("agent_id")].append(values)
    return out


def read_stories(conn: sa.Connection, agent_ids: list[int]) -> list[AgentStory]:
    """The stories of ``agent_ids`` (unknown ids are left out), in name order."""
    if not agent_ids:
        return []
    ids = {"ids": list(agent_ids)}
    stories = [AgentStory(**dict(r)) for r in conn.execute(_AGENTS, ids).mappings()]
    status = _group(conn, _STATUS, {**ids, "limit": STATUS_CHANGES})
    gaps = _group(conn, _GAPS, {**ids, "limit": GAPS, "window_h": GAP_WINDOW_H})
    hourly = _group(conn, _HOURLY, {**ids, "hours": HOURS})
    llm = _group(conn, _LLM, {**ids, "days": DAYS})
    alerts = _group(conn, _ALERTS, ids)
    tasks = _group(conn, _TASKS, {**ids, "limit": TASKS}) if _has_table(conn, "fleet.tasks") else {}
    for s in stories:
        s.status_changes = status.get(s.agent_id, [])
        s.heartbeat_gaps = gaps.get(s.agent_id, [])
        s.hourly = hourly.get(s.agent_id, [])
        s.llm_days = llm.get(s.agent_id, [])
        s.open_alerts = alerts.get(s.agent_id, [])
        s.tasks = tasks.get(s.agent_id, [])
    return stories


_CHANGED = sa.text("""
    SELECT agent_id FROM fleet.agents a
    WHERE a.agent_id > :after_id
      AND (a.status_since > :since OR a.updated_at > :since
           OR EXISTS (SELECT 1 FROM fleet.alerts al WHERE al.agent_id = a.agent_id
                      AND (al.opened_at > :since OR al.resolved_at > :since)))
    ORDER BY agent_id LIMIT :limit""")


def changed_agents(conn: sa.Connection, since: datetime, limit: int, after_id: int = 0) -> list[int]:
    """Agents (by id, after ``after_id``) whose status, registration or alerts changed after ``since``."""
    return list(conn.execute(_CHANGED, {"since": since, "limit": limit, "after_id": after_id}).scalars())


def agents_after(conn: sa.Connection, name: str, limit: int) -> list[tuple[int, str]]:
    """The next ``limit`` agents by name after ``name`` (round robin over the fleet)."""
    return [tuple(r) for r in conn.execute(sa.text(
        "SELECT agent_id, name FROM fleet.agents WHERE name > :n ORDER BY name LIMIT :l"), {"n": name, "l": limit})]


def all_agent_names(conn: sa.Connection) -> list[str]:
    return list(conn.execute(sa.text("SELECT name FROM fleet.agents ORDER BY name")).scalars())
