"""Agent health as plain functions over the database: evaluate, summarise, rate the heartbeat stream.

The rules live in SQL (``fleet.evaluate_health`` in sql/0003_health.sql) so that one statement
judges the whole fleet; this module calls it with the channels configured in the environment,
and reads the fleet's state back for the Dagster face and the CLI. ``now`` is injectable
everywhere: the tests drive every transition with explicit times.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from agents_pipeline.defs.alerts.channels import configured_channels
from agents_pipeline.defs.heartbeats import boundary
from agents_pipeline.defs.heartbeats.boundary import BoundaryReport
from agents_pipeline.defs.heartbeats.settings import HealthSettings
from agents_pipeline.platform.pipeline_agents import EVALUATOR_AGENT

STATUSES = ("new", "up", "late", "down", "paused")
LIFECYCLES = ("starting", "running", "draining", "stopped")   # fleet.agents.lifecycle (sql/0016)
SKEW_LIMIT_S = 5.0
NOT_UP_ROWS = 50


@dataclass(frozen=True)
class Transition:
    agent_id: int
    name: str
    from_status: str
    to_status: str
    changed_at: datetime
    reason: str
    message: str | None


@dataclass
class FleetSummary:
    evaluated_at: datetime
    counts: dict[str, int]
    total: int
    down_unsilenced: list[str]
    silenced: int
    clock_skewed: list[dict[str, Any]]
    not_up: list[dict[str, Any]]
    latest_heartbeat_at: datetime | None
    heartbeat_total: int
    heartbeats_per_minute: float | None = None
    open_alerts: int = 0
    transitions: list[Transition] = field(default_factory=list)
    evaluation_ms: float = 0.0
    boundary: BoundaryReport = field(default_factory=BoundaryReport)  # held rows, throttling: same evaluation
    lifecycles: dict[str, int] = field(default_factory=dict)  # what agents said of themselves (Agent helper)

    @property
    def down_share(self) -> float:
        fleet = self.total - self.counts.get("paused", 0)
        return len(self.down_unsilenced) / fleet if fleet else 0.0


def evaluate(conn: sa.Connection, *, now: datetime | None = None, channels: list[str] | None = None,
             reminder_s: float | None = 3600.0, min_fleet: int = 5,
             stall_max_s: float = 120.0) -> list[Transition]:
    """Runs one evaluation in the caller's transaction; returns the transitions it recorded.
    ``stall_max_s``: how long silences wait while no agent at all is heard (0: never)."""
    rows = conn.execute(sa.text("""
        SELECT * FROM fleet.evaluate_health(
            coalesce(CAST(:now AS timestamptz), now()), CAST(:channels AS text[]),
            CASE WHEN CAST(:reminder AS double precision) > 0
                 THEN make_interval(secs => CAST(:reminder AS double precision)) END,
            :min_fleet, make_interval(secs => CAST(:stall_max AS double precision)))"""),
        {"now": now, "channels": channels if channels is not None else configured_channels(),
         "reminder": reminder_s, "min_fleet": min_fleet, "stall_max": stall_max_s},
    ).all()
    return [Transition(r.agent_id, r.name, r.from_status, r.to_status, r.changed_at, r.reason, r.message)
            for r in rows]


def summarize(conn: sa.Connection, *, now: datetime | None = None) -> FleetSummary:
    """The fleet at a glance: one scan of fleet.agents (never of fleet.heartbeats)."""
    head = conn.execute(sa.text("""
        SELECT coalesce(CAST(:now AS timestamptz), now()) AS at,
               count(*) AS total,
               count(*) FILTER (WHERE status = 'new') AS n_new,
               count(*) FILTER (WHERE status = 'up') AS n_up,
               count(*) FILTER (WHERE status = 'late') AS n_late,
               count(*) FILTER (WHERE status = 'down') AS n_down,
               count(*) FILTER (WHERE status = 'paused') AS n_paused,
               count(*) FILTER (WHERE silenced_until > coalesce(CAST(:now AS timestamptz), now())) AS silenced,
               max(last_seen) AS latest, coalesce(sum(heartbeat_count), 0) AS hb_total,
               (SELECT count(*) FROM fleet.alerts WHERE resolved_at IS NULL) AS open_alerts,
               count(*) FILTER (WHERE lifecycle = 'starting') AS lc_starting,
               count(*) FILTER (WHERE lifecycle = 'running') AS lc_running,
               count(*) FILTER (WHERE lifecycle = 'draining') AS lc_draining,
               count(*) FILTER (WHERE lifecycle = 'stopped') AS lc_stopped
        FROM fleet.agents WHERE NOT placeholder"""), {"now": now}).one()
    not_up = [dict(r._mapping) for r in conn.execute(sa.text("""
        SELECT name, status, status_since, status_message, last_seen, lifecycle,
               silenced_until > coalesce(CAST(:now AS timestamptz), now()) AS silenced
        FROM fleet.agents
        WHERE NOT placeholder AND status <> 'up'
        ORDER BY CASE status WHEN 'down' THEN 0 WHEN 'late' THEN 1 WHEN 'new' THEN 2 ELSE 3 END, name
        LIMIT :limit"""), {"now": now, "limit": NOT_UP_ROWS})]
    down_unsilenced = list(conn.execute(sa.text("""
        SELECT name FROM fleet.agents
        WHERE NOT placeholder AND status = 'down' AND NOT paused
          AND (silenced_until IS NULL OR silenced_until <= coalesce(CAST(:now AS timestamptz), now()))
        ORDER BY name"""), {"now": now}).scalars())
    skewed = [dict(r._mapping) for r in conn.execute(sa.text("""
        SELECT name, round(clock_skew_s::numeric, 1)::float AS clock_skew_s FROM fleet.agents
        WHERE NOT placeholder AND abs(clock_skew_s) > :limit ORDER BY abs(clock_skew_s) DESC, name"""),
        {"limit": SKEW_LIMIT_S})]
    return FleetSummary(
        evaluated_at=head.at,
        counts={"new": head.n_new, "up": head.n_up, "late": head.n_late, "down": head.n_down,
                "paused": head.n_paused},
        total=head.total, down_unsilenced=down_unsilenced, silenced=head.silenced,
        clock_skewed=skewed, not_up=not_up, latest_heartbeat_at=head.latest,
        heartbeat_total=int(head.hb_total), open_alerts=head.open_alerts,
        lifecycles={state: getattr(head, f"lc_{state}") for state in LIFECYCLES},
    )


def heartbeat_rate(conn: sa.Connection, summary: FleetSummary) -> float | None:
    """Heartbeats per minute since the previous evaluation, from the agents' running counters."""
    row = conn.execute(sa.text("""
        SELECT value FROM fleet.system_config WHERE key = 'health.heartbeat_counter' FOR UPDATE""")).first()
    at = summary.evaluated_at.timestamp()
    conn.execute(sa.text("""
        INSERT INTO fleet.system_config (key, value, description, updated_at)
        VALUES ('health.heartbeat_counter', CAST(:value AS jsonb),
                'total heartbeats and time at the last health evaluation', now())
        ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()"""),
        {"value": json.dumps({"at": at, "total": summary.heartbeat_total})})
    previous = row.value if row is not None else None
    if not previous or at <= float(previous["at"]) or summary.heartbeat_total < int(previous["total"]):
        return None
    return (summary.heartbeat_total - int(previous["total"])) * 60.0 / (at - float(previous["at"]))


def run_evaluation(engine: sa.Engine, settings: HealthSettings, *, now: datetime | None = None,
                   self_agent: str | None = None) -> FleetSummary:
    """Heartbeat the evaluator's own agent, evaluate, summarise: one transaction."""
    from agents_pipeline.platform.pipeline_agents import heartbeat_pipeline_agent

    with engine.begin() as conn:
        if self_agent:
            heartbeat_pipeline_agent(conn, self_agent, period_s=settings.evaluator_period_s,
                                     grace_s=settings.evaluator_grace_s)
        started = time.perf_counter()
        channels = configured_channels()
        transitions = evaluate(conn, now=now, channels=channels, reminder_s=settings.reminder_s,
                               min_fleet=settings.collapse_min_fleet, stall_max_s=settings.ingest_stall_max_s)
        elapsed = (time.perf_counter() - started) * 1000
        guarded = boundary.check(conn, channels, now=now, lock_hold_s=settings.lock_hold_s,
                                 throttle_s=settings.throttle_alert_s)
        summary = summarize(conn, now=now)
        summary.boundary = guarded
        summary.heartbeats_per_minute = heartbeat_rate(conn, summary)
    summary.transitions = transitions
    summary.evaluation_ms = elapsed
    return summary


def evaluate_and_log(engine: sa.Engine, log: Any,
                     settings: HealthSettings | None = None) -> tuple[FleetSummary, HealthSettings]:
    """One evaluation with ``settings`` (default: the environment's), each transition logged:
    what both the agent_health asset and its sensor do before reporting."""
    settings = settings or HealthSettings.from_env()
    summary = run_evaluation(engine, settings, self_agent=EVALUATOR_AGENT)
    for t in summary.transitions:
        log.info("%s: %s -> %s at %s (%s)", t.name, t.from_status, t.to_status,
                 t.changed_at.astimezone(UTC).isoformat(), t.reason)
    for held in summary.boundary.held_rows:
        log.warning("agent %s's row held locked by process %s (%s) for %s s%s", held["name"], held["holder_pid"],
                    held["holder_login"], held["held_s"], "; session ended" if held["ended"] else "")
    return summary, settings
