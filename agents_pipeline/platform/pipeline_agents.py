"""The pipeline's own sensors and jobs as agents: registered on first use, heartbeated as they run.

They go through fleet.record_heartbeats like any agent, so a stalled evaluator or sender shows
up in `agents-pipeline status` and, for the sender, raises an alert like any other agent.
"""

from __future__ import annotations

import sqlalchemy as sa

#: The pipeline's own agents: the health evaluator (heartbeats domain) and the alert sender
#: (alerts service). Here, below both, so neither domain imports the other.
EVALUATOR_AGENT = "agents-pipeline:health-evaluator"
SENDER_AGENT = "agents-pipeline:alert-sender"

HEARTBEAT_SQL = sa.text("""
    SELECT error FROM fleet.record_heartbeats(
        ARRAY[CAST(:name AS text)], ARRAY[NULL::bytea], ARRAY[CAST(:kind AS text)], ARRAY[now()],
        ARRAY[CAST(:message AS text)], ARRAY[NULL::jsonb])""")


def ensure_pipeline_agent(conn: sa.Connection, name: str, *, period_s: float, grace_s: float) -> None:
    """Registers the agent (no token: only the pipeline's operator login heartbeats it)."""
    conn.execute(sa.text("""
        INSERT INTO fleet.agents (name, agent_type, period, grace)
        VALUES (:name, 'pipeline', make_interval(secs => :period), make_interval(secs => :grace))
        ON CONFLICT (name) DO NOTHING"""), {"name": name, "period": period_s, "grace": grace_s})


def heartbeat_pipeline_agent(conn: sa.Connection, name: str, *, period_s: float, grace_s: float,
                             kind: str = "ok", message: str | None = None) -> None:
    """One heartbeat in the caller's transaction; makes today's partition when it is missing."""
    ensure_pipeline_agent(conn, name, period_s=period_s, grace_s=grace_s)
    params = {"name": name, "kind": kind, "message": message}
    try:
        with conn.begin_nested():
            error = conn.execute(HEARTBEAT_SQL, params).scalar_one()
    except sa.exc.DBAPIError as exc:
        if "no partition of relation" not in str(exc):
            raise
        conn.execute(sa.text("SELECT fleet.ensure_current_partitions()"))
        error = conn.execute(HEARTBEAT_SQL, params).scalar_one()
    if error:
        raise RuntimeError(f"heartbeat for {name} refused: {error}")
