"""Status changes at scale (sql/0015): they rewrite no index, so a mass transition costs what
its rows cost."""

from __future__ import annotations

import sqlalchemy as sa

from agents_pipeline.defs.heartbeats.health import evaluate
from agents_pipeline_tests.heartbeats.helpers import add_agent, beat, s


def test_status_changes_are_heap_only_updates(engine, t0):
    """Guards the collapse cost of issue #19: with an index on agents.status, every transition
    wrote a new entry in each of the table's indexes (480 of 740 ms at 10,000 agents)."""
    for i in range(6):
        add_agent(engine, f"h{i}", period_s=10, grace_s=5, created_at=t0)
        beat(engine, f"h{i}", t0 + s(1))
    with engine.begin() as conn:
        ups = evaluate(conn, now=t0 + s(2), channels=["log"])
        updated, hot = conn.execute(sa.text("""
            SELECT pg_stat_get_xact_tuples_updated('fleet.agents'::regclass),
                   pg_stat_get_xact_tuples_hot_updated('fleet.agents'::regclass)""")).one()
    assert [t.to_status for t in ups] == ["up"] * 6
    assert updated >= 6 and hot == updated, (updated, hot)
    with engine.begin() as conn:
        downs = evaluate(conn, now=t0 + s(200), channels=["log"])   # the whole fleet at once, past the stall wait
        updated, hot = conn.execute(sa.text("""
            SELECT pg_stat_get_xact_tuples_updated('fleet.agents'::regclass),
                   pg_stat_get_xact_tuples_hot_updated('fleet.agents'::regclass)""")).one()
        indexed = conn.execute(sa.text("""
            SELECT count(*) FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
            WHERE i.indrelid = 'fleet.agents'::regclass AND a.attname = 'status'""")).scalar_one()
    assert sorted(t.to_status for t in downs) == ["down"] * 6
    assert updated >= 6 and hot == updated and indexed == 0, (updated, hot)
