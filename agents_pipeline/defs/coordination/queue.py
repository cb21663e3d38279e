"""The task queue per kind, as an operator watches it: how deep, how long the oldest ready task
has waited, how many finished and failed lately, what is stuck and what is dead.

Each count reads one partial index of ``fleet.tasks`` (ready, claimed, recently done, recently
failed, dead), never the done tasks at large, so a report costs the same with a million done
tasks as with none. Plain functions over a SQLAlchemy connection: the asset, the sensor and the
tests call them alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

WINDOW_S = 300            # throughput and failures are counted over the sensor's interval
STUCK_AFTER_S = 60        # a lease that ran out this long ago, with nobody claiming the task since
LISTED = 20               # rows in the stuck and dead-letter tables, kinds with their own plots

_PER_KIND = sa.text("""
    WITH ready AS (
        SELECT kind, count(*) FILTER (WHERE run_after <= :now) AS depth,
               count(*) FILTER (WHERE run_after > :now) AS scheduled,
               max(extract(epoch FROM :now - run_after)) FILTER (WHERE run_after <= :now) AS oldest_s
        FROM fleet.tasks WHERE state = 'ready' GROUP BY kind
    ), claimed AS (
        SELECT kind, count(*) AS claimed,
               count(*) FILTER (WHERE lease_until < :now - make_interval(secs => :stuck)) AS stuck
        FROM fleet.tasks WHERE state = 'claimed' GROUP BY kind
    ), done AS (
        SELECT kind, count(*) AS done FROM fleet.tasks
        WHERE state = 'done' AND finished_at >= :now - make_interval(secs => :window) GROUP BY kind
    ), failed AS (
        SELECT kind, count(*) AS failures FROM fleet.tasks
        WHERE failed_at >= :now - make_interval(secs => :window) GROUP BY kind
    ), dead AS (
        SELECT kind, count(*) AS dead FROM fleet.tasks WHERE state = 'dead' GROUP BY kind
    )
    SELECT kind, coalesce(r.depth, 0) AS depth, coalesce(r.scheduled, 0) AS scheduled,
           coalesce(r.oldest_s, 0)::float AS oldest_ready_age_s, coalesce(c.claimed, 0) AS claimed,
           coalesce(c.stuck, 0) AS stuck, coalesce(d.done, 0) AS done, coalesce(f.failures, 0) AS failures,
           coalesce(x.dead, 0) AS dead
    FROM ready r FULL JOIN claimed c USING (kind) FULL JOIN done d USING (kind)
         FULL JOIN failed f USING (kind) FULL JOIN dead x USING (kind)
    ORDER BY kind""")

_STUCK = sa.text("""
    SELECT t.task_id, t.kind, a.name AS holder, t.attempts,
           extract(epoch FROM :now - t.lease_until)::float AS overdue_s
    FROM fleet.tasks t LEFT JOIN fleet.agents a ON a.agent_id = t.claimed_by
    WHERE t.state = 'claimed' AND t.lease_until < :now - make_interval(secs => :stuck)
    ORDER BY t.lease_until LIMIT :limit""")

_DEAD = sa.text("""
    SELECT t.task_id, t.kind, t.attempts, coalesce(t.last_error, '') AS last_error, t.finished_at,
           a.name AS last_holder
    FROM fleet.tasks t LEFT JOIN fleet.agents a ON a.agent_id = t.claimed_by
    WHERE t.state = 'dead' ORDER BY t.finished_at DESC NULLS LAST, t.task_id DESC LIMIT :limit""")


# Tasks released lately (their agent marked down, or a lease run out) and where they are now: how
# a crashed agent's work is seen moving to another agent. By the failed_at index, within the window.
_RELEASED = sa.text("""
    SELECT t.task_id, t.kind, t.state, t.attempts, t.last_error AS reason, t.failed_at,
           CASE WHEN t.state IN ('claimed', 'done') THEN a.name END AS now_with
    FROM fleet.tasks t LEFT JOIN fleet.agents a ON a.agent_id = t.claimed_by
    WHERE t.failed_at >= :now - make_interval(secs => :window) AND t.last_error LIKE 'released:%'
    ORDER BY t.failed_at DESC, t.task_id DESC LIMIT :limit""")
_RELEASED_COUNT = sa.text("""
    SELECT count(*) FROM fleet.tasks
    WHERE failed_at >= :now - make_interval(secs => :window) AND last_error LIKE 'released:%'""")


@dataclass(frozen=True)
class KindStats:
    kind: str
    depth: int                    # ready to run now
    scheduled: int                # ready, waiting for run_after (backoff or a later start)
    oldest_ready_age_s: float     # since the oldest ready task's run_after
    claimed: int
    stuck: int
    done: int                     # finished in the window
    failures: int                 # failed or released in the window (the latest failure of each task)
    dead: int

    @property
    def activity(self) -> int:
        return self.depth + self.scheduled + self.claimed + self.done + self.failures + self.dead


@dataclass
class QueueReport:
    at: datetime
    kinds: list[KindStats]
    stuck: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    released: list[dict[str, Any]] = field(default_factory=list)   # the latest LISTED, newest first
    released_total: int = 0                                         # released in the window
    window_s: float = WINDOW_S

    def total(self, attribute: str) -> int:
        return sum(getattr(k, attribute) for k in self.kinds)

    @property
    def oldest_ready_age_s(self) -> float:
        return max((k.oldest_ready_age_s for k in self.kinds), default=0.0)


def report(conn: sa.Connection, now: datetime | None = None) -> QueueReport:
    """The queue at ``now`` (default: the database's clock)."""
    at = now or conn.execute(sa.text("SELECT now()")).scalar_one()
    params = {"now": at, "window": WINDOW_S, "stuck": STUCK_AFTER_S, "limit": LISTED}
    kinds = [KindStats(**row._mapping) for row in conn.execute(_PER_KIND, params)]
    stuck = [dict(row._mapping) for row in conn.execute(_STUCK, params)]
    dead = [dict(row._mapping) for row in conn.execute(_DEAD, params)]
    released = [dict(row._mapping) for row in conn.execute(_RELEASED, params)]
    released_total = conn.execute(_RELEASED_COUNT, params).scalar_one()
    return QueueReport(at, kinds, stuck, dead, released, released_total)


def check_alerts(conn: sa.Connection, channels: list[str], now: datetime | None = None) -> int:
    """Resolves the task_dead alerts of kinds with no dead letter left (queueing their resolved
    notices on ``channels``) and opens any that is missing; returns how many it resolved."""
    return conn.execute(sa.text("SELECT fleet.check_task_alerts(coalesce(CAST(:now AS timestamptz), now()), "
                                "CAST(:channels AS text[]))"), {"now": now, "channels": channels}).scalar_one()
