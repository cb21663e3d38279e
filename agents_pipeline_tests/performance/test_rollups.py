"""Hourly rollups: exact figures, identical on re-run, refusal for archived or empty hours."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from agents_pipeline.core.errors import ValidationError
from agents_pipeline.defs.performance.rollups import RollupRefused, rollup_hour

HOUR = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


def _seed(engine, agent_id, values, *, hour=HOUR, metric="cpu_percent", host="perfhost"):
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT fleet.ensure_partitions('perf_samples', CAST(:d AS date), CAST(:d AS date))"),
                     {"d": hour.date().isoformat()})
        conn.execute(sa.text(
            "INSERT INTO fleet.perf_samples (sampled_at, host, agent_id, metric, value) "
            "SELECT :h + make_interval(secs => 60 * (i - 1)), :host, :a, :m, v "
            "FROM unnest(CAST(:vals AS double precision[])) WITH ORDINALITY AS t(v, i)"),
            {"h": hour, "host": host, "a": agent_id, "m": metric, "vals": values})


def _rollups(engine):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT hour, host, agent_id, metric, samples, min_value, mean_value, p50_value, p95_value, max_value, "
            "computed_at FROM fleet.perf_rollups ORDER BY hour, host, agent_id NULLS FIRST, metric")).all()


def _pct(values, q):
    """percentile_cont: linear interpolation between the closest ranks."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def test_rollup_figures_and_rerun_is_identical(engine, register):
    agent = register("cruncher")
    cpu = [float((i * 37) % 101) for i in range(60)]
    _seed(engine, agent, cpu)
    _seed(engine, None, [50.0, 70.0, 90.0], metric="memory_percent")
    _seed(engine, agent, [1.0, 2.0], hour=HOUR + timedelta(hours=1))      # next hour: not counted
    _seed(engine, agent, [3.0], hour=HOUR - timedelta(minutes=1))          # previous hour: not counted
    with engine.begin() as conn:
        first = rollup_hour(conn, HOUR)
    assert first.raw_samples == 63 and first.changed == 2 and first.removed == 0
    by_metric = {r.metric: r for r in first.rows}
    row = by_metric["cpu_percent"]
    assert (row.agent, row.samples, row.min_value, row.max_value) == ("cruncher", 60, min(cpu), max(cpu))
    assert row.mean_value == pytest.approx(statistics.fmean(cpu))
    assert row.p50_value == pytest.approx(_pct(cpu, 0.5)) and row.p95_value == pytest.approx(_pct(cpu, 0.95))
    host_row = by_metric["memory_percent"]
    assert host_row.agent_id is None and host_row.p95_value == pytest.approx(88.0)
    before = _rollups(engine)
    with engine.begin() as conn:
        again = rollup_hour(conn, HOUR)
    assert again.changed == 0 and again.rows == first.rows
    assert _rollups(engine) == before, "a re-run must leave every row, computed_at included, as it was"


def test_late_sample_updates_and_vanished_metric_is_removed(engine, register):
    agent = register("late")
    _seed(engine, agent, [10.0, 20.0])
    _seed(engine, agent, [1.0], metric="threads")
    with engine.begin() as conn:
        rollup_hour(conn, HOUR)
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM fleet.perf_samples WHERE metric = 'threads'"))
        conn.execute(sa.text(
            "INSERT INTO fleet.perf_samples (sampled_at, host, agent_id, metric, value, source) "
            "VALUES (:t, 'perfhost', :a, 'cpu_percent', 60, 'remote')"), {"t": HOUR + timedelta(minutes=30), "a": agent})
        result = rollup_hour(conn, HOUR)
    assert (result.changed, result.removed) == (1, 1)
    [row] = result.rows
    assert (row.metric, row.samples, row.max_value, row.mean_value) == ("cpu_percent", 3, 60.0, 30.0)


def test_archived_hour_refuses_and_keeps_its_rollup(engine, register):
    agent = register("archived")
    _seed(engine, agent, [5.0, 6.0, 7.0])
    with engine.begin() as conn:
        rollup_hour(conn, HOUR)
    kept = _rollups(engine)
    with engine.begin() as conn:       # what archival does: the day's raw samples leave
        conn.execute(sa.text("DELETE FROM fleet.perf_samples"))
    with pytest.raises(RollupRefused, match=r"archived\?\): refusing to replace its 1 rollup rows"):
        with engine.begin() as conn:
            rollup_hour(conn, HOUR)
    assert _rollups(engine) == kept


def test_hour_without_samples_refuses(engine):
    with pytest.raises(RollupRefused, match="no raw samples for 2026-03-01 10:00 UTC: the sampler was not running"):
        with engine.begin() as conn:
            rollup_hour(conn, HOUR)
    assert _rollups(engine) == []


def test_unfinished_or_misaligned_hour_refuses(engine):
    now = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    with pytest.raises(RollupRefused, match="not over until 11:00 UTC"):
        with engine.begin() as conn:
            rollup_hour(conn, HOUR, now=now)
    with pytest.raises(ValidationError, match="does not start on the hour"):
        with engine.begin() as conn:
            rollup_hour(conn, HOUR + timedelta(minutes=5))
    with pytest.raises(ValidationError, match="no time zone"):
        with engine.begin() as conn:
            rollup_hour(conn, datetime(2026, 3, 1, 10))
