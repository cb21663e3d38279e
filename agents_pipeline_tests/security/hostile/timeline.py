"""What the hostile-agent run records, and its sizes: shared by the attacker, the fixture that
runs the timeline and the tests that judge it, so none of them imports another's module."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg2

from agents_pipeline.core.dsn import connect_kwargs

HONEST = 20
IDLE_BEATS = 200
ATTACK_BEATS = 1000
PACE_S = 0.02
LOCK_HOLD_S = 3.0
QUIET_PERIOD_S, QUIET_GRACE_S = 2.0, 1.0


@dataclass
class Timeline:
    url: str
    agent_url: str
    tokens: dict[str, str]
    logins: dict[str, str] = field(default_factory=dict)        # agent -> its own login's URL
    idle_ms: list[float] = field(default_factory=list)
    attack_ms: list[float] = field(default_factory=list)
    honest_errors: list[str] = field(default_factory=list)
    outcomes: dict[str, Any] = field(default_factory=dict)      # attack -> what it got back
    webhook: list[dict[str, Any]] = field(default_factory=list)
    webhook_arrivals: dict[str, float] = field(default_factory=dict)   # idempotency key -> time.time()
    quiet_deadline: datetime | None = None
    evaluator_errors: list[str] = field(default_factory=list)


def query(t: Timeline, sql: str) -> list[tuple]:
    """Rows of ``sql`` read as the operator, after the run."""
    conn = psycopg2.connect(**connect_kwargs(t.url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()
