"""Dead letters, handled by an operator: requeued with a fresh attempt budget, or dropped.

Selected by kind and/or task id, at most ``limit`` at a time, oldest first, skipping rows another
session holds. In the same transaction the task_dead alerts of kinds left without dead letters
are resolved, so an alert never outlives what it was about. Plain functions over a SQLAlchemy
connection, called by dead_letter_job.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from agents_pipeline.core.errors import ValidationError
from agents_pipeline.core.tasks import label
from agents_pipeline.defs.coordination.queue import check_alerts

ACTIONS = ("requeue", "drop")

# The same selection in both: dead, of the kind and ids asked for, oldest first, rows another
# session holds skipped.
_REQUEUE = sa.text("""
    WITH picked AS (
        SELECT task_id FROM fleet.tasks
        WHERE state = 'dead' AND (CAST(:kind AS text) IS NULL OR kind = CAST(:kind AS text))
          AND (cardinality(CAST(:ids AS bigint[])) = 0 OR task_id = ANY (CAST(:ids AS bigint[])))
        ORDER BY task_id LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    UPDATE fleet.tasks t
    SET state = 'ready', attempts = 0, run_after = now(), finished_at = NULL, lease_until = NULL
    FROM picked p WHERE t.task_id = p.task_id
    RETURNING t.task_id, t.kind""")

_DROP = sa.text("""
    WITH picked AS (
        SELECT task_id FROM fleet.tasks
        WHERE state = 'dead' AND (CAST(:kind AS text) IS NULL OR kind = CAST(:kind AS text))
          AND (cardinality(CAST(:ids AS bigint[])) = 0 OR task_id = ANY (CAST(:ids AS bigint[])))
        ORDER BY task_id LIMIT :limit FOR UPDATE SKIP LOCKED
    )
    DELETE FROM fleet.tasks t USING picked p WHERE t.task_id = p.task_id
    RETURNING t.task_id, t.kind""")


@dataclass(frozen=True)
class Handled:
    action: str
    task_ids: list[int]
    kinds: list[str]
    alerts_resolved: int
    dead_left: int


def handle(conn: sa.Connection, action: str, *, kind: str | None = None, task_ids: list[int] | None = None,
           limit: int = 1000, channels: list[str] | None = None) -> Handled:
    """Requeues or drops dead letters in the caller's transaction. Dropping needs a kind or task
    ids: deleting every dead letter at once must be asked for by name."""
    if action not in ACTIONS:
        raise ValidationError(f"action must be one of {', '.join(ACTIONS)}, got {action!r}")
    kind = label(kind, "kind") if kind else None
    ids = sorted({int(i) for i in task_ids or []})
    if action == "drop" and kind is None and not ids:
        raise ValidationError("drop needs a kind or task ids")
    if not 1 <= limit <= 10_000:
        raise ValidationError(f"limit must be 1 to 10000, got {limit}")
    rows = conn.execute(_REQUEUE if action == "requeue" else _DROP,
                        {"kind": kind, "ids": ids, "limit": limit}).all()
    resolved = check_alerts(conn, channels or ["log"])
    left = conn.execute(sa.text("SELECT count(*) FROM fleet.tasks WHERE state = 'dead'")).scalar_one()
    return Handled(action, sorted(r.task_id for r in rows), sorted({r.kind for r in rows}), resolved, left)
