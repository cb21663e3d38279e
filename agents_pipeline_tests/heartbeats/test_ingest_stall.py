"""The ingest stall guard (issue #19's soak): when no agent at all is heard, the silence is the
monitor's (its database, API, network or host paused), not every agent's, and no one is judged
late or down for it until ``stall_max_s`` has passed."""

from __future__ import annotations

import sqlalchemy as sa

from agents_pipeline.defs.heartbeats.health import evaluate
from agents_pipeline.platform.pipeline_agents import heartbeat_pipeline_agent
from agents_pipeline_tests.heartbeats.helpers import add_agent, agent_row, beat, changes, s


def _fleet(engine, t0, n: int = 6) -> list[str]:
    names = [f"st{i}" for i in range(n)]
    for name in names:
        add_agent(engine, name, period_s=5, grace_s=10, created_at=t0)
        beat(engine, name, t0 + s(1))
    with engine.begin() as conn:
        assert {t.to_status for t in evaluate(conn, now=t0 + s(2), channels=["log"])} == {"up"}
    return names


def _open_alerts(engine) -> list[str]:
    with engine.begin() as conn:
        return sorted(conn.execute(sa.text(
            "SELECT alert_key FROM fleet.alerts WHERE resolved_at IS NULL")).scalars())


def test_a_fleet_silent_at_once_waits_for_the_stall_to_end(engine, t0):
    """28 s of silence from every agent (the soak's paused machine): nobody late, no alert; the
    agents' heartbeats after it keep every one of them up."""
    names = _fleet(engine, t0)
    with engine.begin() as conn:
        assert evaluate(conn, now=t0 + s(29), channels=["log"]) == []
    for name in names:
        beat(engine, name, t0 + s(30))
    with engine.begin() as conn:
        assert evaluate(conn, now=t0 + s(31), channels=["log"]) == []
    assert _open_alerts(engine) == []
    assert {agent_row(engine, n).status for n in names} == {"up"}
    assert changes(engine, "st0") == [("new", "up", t0 + s(1), "heartbeat")]


def test_a_silence_heard_past_is_judged_at_its_deadline(engine, t0):
    """One agent silent while the others are heard after its deadline: down at the deadline it
    passed, even while the fleet then goes quiet (heard at t0+20, judged at +29)."""
    names = _fleet(engine, t0)
    for name in names[1:]:
        beat(engine, name, t0 + s(20))
    with engine.begin() as conn:
        got = [(t.name, t.to_status, t.changed_at) for t in evaluate(conn, now=t0 + s(29), channels=["log"])]
    assert got == [("st0", "down", t0 + s(16))]
    assert _open_alerts(engine) == [f"agent_down:{agent_row(engine, 'st0').agent_id}"]


def test_the_wait_ends_after_stall_max_and_the_collapse_guard_takes_over(engine, t0):
    names = _fleet(engine, t0)
    with engine.begin() as conn:
        assert evaluate(conn, now=t0 + s(120), channels=["log"], stall_max_s=120) == []
        downs = evaluate(conn, now=t0 + s(122), channels=["log"], stall_max_s=120)
    assert sorted((t.name, t.to_status, t.changed_at) for t in downs if t.to_status == "down") == \
        [(n, "down", t0 + s(16)) for n in names]     # recorded at the deadlines they passed
    assert "fleet_collapse" in _open_alerts(engine)


def test_no_wait_when_disabled(engine, t0):
    names = _fleet(engine, t0)
    with engine.begin() as conn:
        downs = evaluate(conn, now=t0 + s(29), channels=["log"], stall_max_s=0)
    assert sorted(t.name for t in downs if t.to_status == "down") == names


def test_a_fleet_under_the_minimum_is_judged_as_usual(engine, t0):
    names = _fleet(engine, t0, n=4)
    with engine.begin() as conn:
        downs = evaluate(conn, now=t0 + s(29), channels=["log"])
    assert sorted(t.name for t in downs if t.to_status == "down") == names


def test_the_pipelines_own_heartbeat_is_not_evidence(engine, t0):
    """The evaluator heartbeats its own agent in the evaluation's transaction: were that counted,
    the guard could never see a stall."""
    _fleet(engine, t0)
    with engine.begin() as conn:
        heartbeat_pipeline_agent(conn, "agents-pipeline:health-evaluator", period_s=10, grace_s=50)
        conn.execute(sa.text("UPDATE fleet.agents SET last_seen = :at WHERE agent_type = 'pipeline'"),
                     {"at": t0 + s(28)})
        assert [t for t in evaluate(conn, now=t0 + s(29), channels=["log"]) if t.name.startswith("st")] == []
