"""Helpers shared by the health and alerting tests: an engine, agents, heartbeats at chosen times."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa


def add_agent(engine: sa.Engine, name: str, *, period_s: float = 60, grace_s: float = 30,
              created_at: datetime | None = None) -> int:
    """Registers an agent directly, optionally as if registered at ``created_at``."""
    with engine.begin() as conn:
        return conn.execute(sa.text("""
            INSERT INTO fleet.agents (name, period, grace, created_at, status_since)
            VALUES (:name, make_interval(secs => :p), make_interval(secs => :g),
                    coalesce(:at, now()), coalesce(:at, now()))
            RETURNING agent_id"""), {"name": name, "p": period_s, "g": grace_s, "at": created_at}).scalar_one()


def beat(engine: sa.Engine, name: str, at: datetime, *, kind: str = "ok", message: str | None = None,
         sent_at: datetime | None = None) -> None:
    """A heartbeat as fleet.record_heartbeats leaves it, with the receive time set to ``at``.

    The heartbeat path stamps now(); to drive time explicitly the agent's columns and the
    heartbeat row are then moved to ``at`` exactly as the function would have set them then.
    """
    with engine.begin() as conn:
        err = conn.execute(sa.text("""
            SELECT error FROM fleet.record_heartbeats(ARRAY[CAST(:n AS text)], ARRAY[NULL::bytea],
                ARRAY[CAST(:k AS text)], ARRAY[CAST(:s AS timestamptz)], ARRAY[CAST(:m AS text)],
                ARRAY[NULL::jsonb])"""), {"n": name, "k": kind, "s": sent_at or at, "m": message}).scalar_one()
        assert err is None, err
        conn.execute(sa.text("""
            UPDATE fleet.agents SET last_seen = :at,
                run_started_at = CASE WHEN last_kind = 'start' THEN CAST(:at AS timestamptz) END,
                last_fail_at = CASE WHEN last_kind = 'fail' THEN CAST(:at AS timestamptz) ELSE last_fail_at END,
                clock_skew_s = extract(epoch FROM CAST(:s AS timestamptz) - CAST(:at AS timestamptz))
            WHERE name = :n"""), {"n": name, "at": at, "s": sent_at or at})
        # The row itself too (same transaction, so now() is the time it was stamped with): the
        # evaluator ends a downtime at the first heartbeat row after the alert opened.
        conn.execute(sa.text("""
            UPDATE fleet.heartbeats SET received_at = :at
            WHERE agent_id = (SELECT agent_id FROM fleet.agents WHERE name = :n) AND received_at = now()"""),
            {"n": name, "at": at})


def agent_row(engine: sa.Engine, name: str) -> sa.Row:
    with engine.begin() as conn:
        return conn.execute(sa.text("SELECT * FROM fleet.agents WHERE name = :n"), {"n": name}).one()


def changes(engine: sa.Engine, name: str) -> list[tuple[str, str, datetime, str]]:
    with engine.begin() as conn:
        return [tuple(r) for r in conn.execute(sa.text("""
            SELECT c.from_status, c.to_status, c.changed_at, c.reason FROM fleet.status_changes c
            JOIN fleet.agents a USING (agent_id) WHERE a.name = :n ORDER BY c.change_id"""), {"n": name})]


def notifications(engine: sa.Engine) -> list[sa.Row]:
    with engine.begin() as conn:
        return conn.execute(sa.text("""
            SELECT notification_id, alert_id, event, channel, idempotency_key, payload, attempts,
                   last_error, delivered_at, gave_up_at
            FROM fleet.notifications ORDER BY notification_id""")).all()


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)
