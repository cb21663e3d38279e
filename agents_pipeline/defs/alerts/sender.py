"""The outbox sender: claims due notifications, delivers them, records the outcome.

Claiming is a short transaction of its own (``FOR UPDATE SKIP LOCKED`` plus a lease), committed
before any network call, so no row lock is held while a receiver is slow; two senders never
claim the same row, and a sender that dies after claiming only delays the row until its lease
runs out. Delivery is therefore at least once: the idempotency key in every message lets the
receiver drop a duplicate. Each claim counts as an attempt; a failure records the error and
schedules the next attempt with exponential backoff, and after ``max_attempts`` the row is
given up (kept, with its last error, for the operator).
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from agents_pipeline.defs.alerts.channels import ChannelSettings, DeliveryError, deliver

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SenderPolicy:
    lease_s: float = 60.0            # longer than one delivery (<= 5 s) with a wide margin
    batch: int = 50
    backoff_base_s: float = 10.0
    backoff_cap_s: float = 3600.0
    max_attempts: int = 12           # about nine hours of retries at the defaults
    budget_s: float = 20.0           # stop claiming after this long in one call


@dataclass(frozen=True)
class Claimed:
    notification_id: int
    channel: str
    event: str
    idempotency_key: str
    payload: dict[str, Any]
    attempts: int
    lease: str


@dataclass
class SendReport:
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0
    errors: list[str] = field(default_factory=list)


def backoff_s(attempts: int, policy: SenderPolicy) -> float:
    """Exponential backoff with jitter, so that retries after an outage do not arrive together."""
    base = min(policy.backoff_cap_s, policy.backoff_base_s * 2 ** max(0, attempts - 1))
    return base * (0.75 + random.random() * 0.5)


def claim(engine: sa.Engine, *, worker: str, limit: int = 50, lease_s: float = 60.0,
          now: datetime | None = None) -> list[Claimed]:
    """Leases up to ``limit`` due notifications to this worker and commits at once."""
    lease = f"{worker}:{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        rows = conn.execute(sa.text("""
            WITH due AS (
                SELECT notification_id FROM fleet.notifications
                WHERE delivered_at IS NULL AND gave_up_at IS NULL
                  AND next_attempt_at <= coalesce(:now, now())
                  AND (lease_until IS NULL OR lease_until <= coalesce(:now, now()))
                ORDER BY next_attempt_at, notification_id
                LIMIT :limit
                FOR UPDATE SKIP LOCKED
            )
            UPDATE fleet.notifications n
            SET lease_until = coalesce(:now, now()) + make_interval(secs => :lease_s),
                leased_by = :lease, attempts = n.attempts + 1
            FROM due WHERE n.notification_id = due.notification_id
            RETURNING n.notification_id, n.channel, n.event, n.idempotency_key, n.payload, n.attempts
        """), {"now": now, "limit": max(1, min(limit, 1000)), "lease_s": lease_s, "lease": lease}).all()
    return [Claimed(r.notification_id, r.channel, r.event, r.idempotency_key, r.payload, r.attempts, lease)
            for r in sorted(rows, key=lambda r: r.notification_id)]


def mark_delivered(engine: sa.Engine, item: Claimed) -> bool:
    """False when the lease was lost (another sender took the row over): a harmless duplicate."""
    with engine.begin() as conn:
        result = conn.execute(sa.text("""
            UPDATE fleet.notifications SET delivered_at = now(), lease_until = NULL, last_error = NULL
            WHERE notification_id = :id AND leased_by = :lease AND delivered_at IS NULL"""),
            {"id": item.notification_id, "lease": item.lease})
        return result.rowcount == 1


def mark_failed(engine: sa.Engine, item: Claimed, error: str, policy: SenderPolicy) -> bool:
    """Records the error and schedules a retry, or gives up; True when given up."""
    give_up = item.attempts >= policy.max_attempts
    with engine.begin() as conn:
        conn.execute(sa.text("""
            UPDATE fleet.notifications
            SET last_error = :error, lease_until = NULL,
                next_attempt_at = now() + make_interval(secs => :delay),
                gave_up_at = CASE WHEN :give_up THEN now() END
            WHERE notification_id = :id AND leased_by = :lease AND delivered_at IS NULL"""),
            {"id": item.notification_id, "lease": item.lease, "error": error[:2000],
             "delay": backoff_s(item.attempts, policy), "give_up": give_up})
    return give_up


def send_pending(engine: sa.Engine, settings: ChannelSettings, *, worker: str = "sender",
                 policy: SenderPolicy | None = None) -> SendReport:
    """Delivers what is due, batch by batch, until nothing is due or the time budget is spent."""
    policy = policy or SenderPolicy()
    report = SendReport()
    started = time.monotonic()
    # A batch must finish inside its lease even if every delivery times out.
    limit = max(1, min(policy.batch, int(policy.lease_s // (settings.timeout_s + 1))))
    while time.monotonic() - started < policy.budget_s:
        batch = claim(engine, worker=worker, limit=limit, lease_s=policy.lease_s)
        if not batch:
            break
        report.claimed += len(batch)
        for item in batch:
            try:
                deliver(item.channel, item.payload, settings)
            except Exception as exc:  # any failure is retried; DeliveryError carries a clean reason
                if not isinstance(exc, DeliveryError):
                    exc = DeliveryError(f"{type(exc).__name__}: {exc}")
                report.failed += 1
                report.errors.append(f"{item.idempotency_key}: {exc}")
                if mark_failed(engine, item, str(exc), policy):
                    report.gave_up += 1
                    log.error("gave up on notification %s after %s attempts: %s",
                              item.idempotency_key, item.attempts, exc)
                continue
            mark_delivered(engine, item)
            report.delivered += 1
    return report
