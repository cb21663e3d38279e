"""Hourly rollups of the raw samples: min, mean, p50, p95 and max per metric, per agent and host.

Computed in PostgreSQL (``percentile_cont``) from ``fleet.perf_samples`` and upserted on the
``perf_rollups_key`` index, so re-running an hour gives the same rows; ``computed_at`` only
moves when a value really changed (a late remote report). An hour whose raw samples are gone
(archived) is refused rather than overwritten with nothing, and so is an hour not yet over,
whose rollup would change after the fact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from agents_pipeline.core.errors import AgentsPipelineError, ValidationError


class RollupRefused(AgentsPipelineError):
    """The hour cannot be rolled up (no raw samples, or not over yet); nothing was written."""


@dataclass(frozen=True)
class RollupRow:
    host: str
    agent_id: int | None
    agent: str | None
    metric: str
    samples: int
    min_value: float
    mean_value: float
    p50_value: float
    p95_value: float
    max_value: float


@dataclass(frozen=True)
class RollupResult:
    hour: datetime
    raw_samples: int
    rows: list[RollupRow]
    changed: int            # rows inserted or whose values changed
    removed: int            # rows of metrics no longer in the raw samples


def hour_start(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValidationError(f"hour {value.isoformat()} has no time zone; give it in UTC")
    value = value.astimezone(UTC)
    if (value.minute, value.second, value.microsecond) != (0, 0, 0):
        raise ValidationError(f"hour {value.isoformat()} does not start on the hour")
    return value


_UPSERT = sa.text("""
    WITH agg AS (
        SELECT host, agent_id, metric, count(*) AS samples, min(value) AS min_value, avg(value) AS mean_value,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50_value,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95_value, max(value) AS max_value
        FROM fleet.perf_samples
        WHERE sampled_at >= :hour AND sampled_at < :end AND value IS NOT NULL
        GROUP BY host, agent_id, metric
    )
    INSERT INTO fleet.perf_rollups AS r (hour, host, agent_id, metric, samples, min_value, mean_value,
                                         p50_value, p95_value, max_value, computed_at)
    SELECT :hour, host, agent_id, metric, samples, min_value, mean_value, p50_value, p95_value, max_value, now()
    FROM agg
    ON CONFLICT (hour, host, (coalesce(agent_id, 0)), metric) DO UPDATE
    SET samples = excluded.samples, min_value = excluded.min_value, mean_value = excluded.mean_value,
        p50_value = excluded.p50_value, p95_value = excluded.p95_value, max_value = excluded.max_value,
        computed_at = excluded.computed_at
    WHERE (r.samples, r.min_value, r.mean_value, r.p50_value, r.p95_value, r.max_value)
          IS DISTINCT FROM (excluded.samples, excluded.min_value, excluded.mean_value,
                            excluded.p50_value, excluded.p95_value, excluded.max_value)""")

_REMOVE_STALE = sa.text("""
    DELETE FROM fleet.perf_rollups r
    WHERE r.hour = :hour AND NOT EXISTS (
        SELECT 1 FROM fleet.perf_samples s
        WHERE s.sampled_at >= :hour AND s.sampled_at < :end AND s.value IS NOT NULL
          AND s.host = r.host AND s.agent_id IS NOT DISTINCT FROM r.agent_id AND s.metric = r.metric)""")


def rollup_hour(conn: sa.Connection, hour: datetime, *, now: datetime | None = None) -> RollupResult:
    """Rolls up [hour, hour + 1 h) in the caller's transaction."""
    hour = hour_start(hour)
    end = hour + timedelta(hours=1)
    now = now or datetime.now(UTC)
    if end > now:
        raise RollupRefused(f"hour {hour:%Y-%m-%d %H:00} UTC is not over until {end:%H:%M} UTC; "
                            "its rollup would change after the fact")
    # One rollup of an hour at a time: a manual re-run racing the schedule waits here.
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext('fleet.perf_rollups'), :h)"),
                 {"h": int(hour.timestamp() // 3600)})
    params = {"hour": hour, "end": end}
    raw = conn.execute(sa.text(
        "SELECT count(*) FROM fleet.perf_samples WHERE sampled_at >= :hour AND sampled_at < :end "
        "AND value IS NOT NULL"), params).scalar_one()
    if raw == 0:
        kept = conn.execute(sa.text("SELECT count(*) FROM fleet.perf_rollups WHERE hour = :hour"), params).scalar_one()
        if kept:
            raise RollupRefused(
                f"no raw samples for {hour:%Y-%m-%d %H:00} UTC (archived?): refusing to replace its "
                f"{kept} rollup rows with nothing; restore the day's samples to recompute it")
        raise RollupRefused(
            f"no raw samples for {hour:%Y-%m-%d %H:00} UTC: the sampler was not running then, or the "
            "samples were archived; nothing to roll up")
    removed = conn.execute(_REMOVE_STALE, params).rowcount
    changed = conn.execute(_UPSERT, params).rowcount
    rows = [RollupRow(*r) for r in conn.execute(sa.text(
        """SELECT r.host, r.agent_id, a.name, r.metric, r.samples, r.min_value, r.mean_value, r.p50_value,
                  r.p95_value, r.max_value
           FROM fleet.perf_rollups r LEFT JOIN fleet.agents a USING (agent_id)
           WHERE r.hour = :hour ORDER BY r.host, r.agent_id NULLS FIRST, r.metric"""), params)]
    return RollupResult(hour, raw, rows, changed, removed)
