"""Opening and resolving alerts, and queueing their notifications, in the caller's transaction.

One open alert per ``alert_key`` (a partial unique index), so raising the same condition twice
is a no-op; every event queues one outbox row per configured channel with an idempotency key,
so the sender can deliver at least once without the receiver seeing duplicates as new.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agents_pipeline.defs.alerts.channels import configured_channels


@dataclass(frozen=True)
class Alert:
    alert_id: int
    alert_key: str
    kind: str
    severity: str
    agent_id: int | None
    subject: str
    opened_at: datetime


def queue_notifications(conn: sa.Connection, alert_id: int | None, event: str, payload: dict[str, Any],
                        key: str) -> int:
    """One outbox row per configured channel; re-queueing the same ``key`` is a no-op."""
    queued = 0
    for channel in configured_channels():
        result = conn.execute(
            sa.text("""INSERT INTO fleet.notifications (alert_id, event, channel, idempotency_key, payload)
                       VALUES (:alert_id, :event, :channel, :key, CAST(:payload AS jsonb))
                       ON CONFLICT (idempotency_key) DO NOTHING"""),
            {"alert_id": alert_id, "event": event, "channel": channel, "key": f"{key}:{channel}",
             "payload": json.dumps({**payload, "idempotency_key": key}, default=str)},
        )
        queued += result.rowcount
    return queued


def open_alert(conn: sa.Connection, *, key: str, kind: str, subject: str, severity: str = "warning",
               agent_id: int | None = None, message: str | None = None, details: dict[str, Any] | None = None,
               opened_at: datetime | None = None, notify: bool = True) -> Alert | None:
    """Opens the alert unless one with ``key`` is open already; returns it only when new."""
    row = conn.execute(
        sa.text("""INSERT INTO fleet.alerts (alert_key, kind, severity, agent_id, subject, message, details, opened_at)
                   VALUES (:key, :kind, :severity, :agent_id, :subject, :message, CAST(:details AS jsonb),
                           coalesce(:opened_at, now()))
                   ON CONFLICT (alert_key) WHERE resolved_at IS NULL DO NOTHING
                   RETURNING alert_id, opened_at"""),
        {"key": key, "kind": kind, "severity": severity, "agent_id": agent_id, "subject": subject,
         "message": message, "details": json.dumps(details or {}, default=str), "opened_at": opened_at},
    ).first()
    if row is None:
        return None
    alert = Alert(row.alert_id, key, kind, severity, agent_id, subject, row.opened_at)
    if notify:
        queue_notifications(conn, alert.alert_id, "opened", {
            "event": "opened", "alert_id": alert.alert_id, "kind": kind, "severity": severity,
            "agent_id": agent_id, "subject": subject, "message": message, "details": details or {},
            "opened_at": alert.opened_at.isoformat(),
        }, key=f"alert:{alert.alert_id}:opened")
        conn.execute(sa.text("UPDATE fleet.alerts SET last_notified_at = now() WHERE alert_id = :id"),
                     {"id": alert.alert_id})
    return alert


def resolve_alert(conn: sa.Connection, *, key: str, message: str | None = None,
                  resolved_at: datetime | None = None, notify: bool = True) -> int | None:
    """Resolves the open alert with ``key``; queues a resolved notice giving how long it was open."""
    row = conn.execute(
        sa.text("""UPDATE fleet.alerts SET resolved_at = coalesce(:at, now())
                   WHERE alert_key = :key AND resolved_at IS NULL
                   RETURNING alert_id, kind, severity, agent_id, subject, opened_at, resolved_at"""),
        {"key": key, "at": resolved_at},
    ).first()
    if row is None:
        return None
    if notify:
        duration = (row.resolved_at - row.opened_at).total_seconds()
        queue_notifications(conn, row.alert_id, "resolved", {
            "event": "resolved", "alert_id": row.alert_id, "kind": row.kind, "severity": row.severity,
            "agent_id": row.agent_id, "subject": row.subject, "message": message,
            "opened_at": row.opened_at.isoformat(), "resolved_at": row.resolved_at.isoformat(),
            "duration_s": duration,
        }, key=f"alert:{row.alert_id}:resolved")
    return row.alert_id
