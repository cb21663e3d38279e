"""Operator actions of the heartbeats domain over the agent-side Database (psycopg2, no SQLAlchemy):
listing alerts and silencing an agent. Used by the CLI."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from agents_pipeline.core import validation
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import NotFoundError, ValidationError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
MAX_SILENCE_S = 90 * 86400


def parse_duration(text: str) -> float:
    """'2h', '90m', '1h30m', '45s', '1d' or a bare number of seconds."""
    raw = (text or "").strip()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        return float(raw)
    parts = _DURATION.findall(raw)
    if not parts or _DURATION.sub("", raw).strip():
        raise ValidationError(f"cannot read duration {text!r}: use e.g. 2h, 30m, 1h30m, 1d or seconds")
    return sum(float(n) * _UNITS[u.lower()] for n, u in parts)


def list_alerts(db: Database, *, open_only: bool = False, limit: int = 100) -> list[dict[str, Any]]:
    def work(cur):
        cur.execute(
            """SELECT al.alert_id, al.kind, al.severity, a.name AS agent, al.subject, al.message,
                      al.opened_at, al.resolved_at, al.last_notified_at,
                      extract(epoch FROM coalesce(al.resolved_at, now()) - al.opened_at)::float AS duration_s,
                      (SELECT count(*) FROM fleet.notifications n
                       WHERE n.alert_id = al.alert_id AND n.delivered_at IS NULL AND n.gave_up_at IS NULL)
                          AS pending_notifications
               FROM fleet.alerts al LEFT JOIN fleet.agents a ON a.agent_id = al.agent_id
               WHERE NOT %s OR al.resolved_at IS NULL
               ORDER BY al.resolved_at IS NULL DESC, al.opened_at DESC
               LIMIT %s""", (open_only, limit))
        return [dict(r) for r in cur.fetchall()]

    return db.transaction(work)


def silence(db: Database, name: str, seconds: float | None) -> datetime | None:
    """Silences the agent's alerts until now + seconds (None: lifts the silence); returns the end."""
    name = validation.name(name)
    if seconds is not None and not 0 < seconds <= MAX_SILENCE_S:
        raise ValidationError(f"a silence lasts more than 0 s and at most 90 days, got {seconds:g} s")

    def work(cur):
        cur.execute(
            """UPDATE fleet.agents
               SET silenced_until = CASE WHEN %s::float IS NULL THEN NULL
                                         ELSE now() + make_interval(secs => %s::float) END,
                   updated_at = now()
               WHERE name = %s RETURNING silenced_until""", (seconds, seconds, name))
        row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"unknown agent {name!r}")
        return row[0]

    return db.transaction(work)
