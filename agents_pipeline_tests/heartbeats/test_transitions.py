"""Every health transition, driven with explicit times (server and process in non-UTC zones)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from agents_pipeline.defs.heartbeats.health import evaluate
from agents_pipeline_tests.heartbeats.helpers import add_agent, agent_row, beat, changes, s


def run(engine: sa.Engine, now: datetime, channels: list[str] | None = None):
    with engine.begin() as conn:
        return evaluate(conn, now=now, channels=channels or ["log"])


def test_up_late_down_recorded_at_the_deadlines(engine, t0):
    add_agent(engine, "a1", period_s=10, grace_s=5, created_at=t0)
    assert run(engine, t0 + s(1)) == []
    beat(engine, "a1", t0 + s(2))
    assert [(t.from_status, t.to_status, t.changed_at) for t in run(engine, t0 + s(3))] == [
        ("new", "up", t0 + s(2))]
    assert run(engine, t0 + s(11.9)) == []                                    # inside the period
    late = run(engine, t0 + s(13))                                            # 2 + 10 passed
    assert [(t.to_status, t.changed_at, t.reason) for t in late] == [("late", t0 + s(12), "late")]
    down = run(engine, t0 + s(40))                                            # noticed long after
    assert [(t.to_status, t.changed_at, t.reason) for t in down] == [("down", t0 + s(17), "missed")]
    row = agent_row(engine, "a1")
    assert (row.status, row.status_since) == ("down", t0 + s(17))
    assert "no heartbeat since" in row.status_message
    beat(engine, "a1", t0 + s(50))
    up = run(engine, t0 + s(51))
    assert [(t.from_status, t.to_status, t.changed_at) for t in up] == [("down", "up", t0 + s(50))]
    assert changes(engine, "a1") == [
        ("new", "up", t0 + s(2), "heartbeat"), ("up", "late", t0 + s(12), "late"),
        ("late", "down", t0 + s(17), "missed"), ("down", "up", t0 + s(50), "heartbeat")]


def test_zero_grace_goes_straight_down(engine, t0):
    add_agent(engine, "z", period_s=10, grace_s=0, created_at=t0)
    beat(engine, "z", t0 + s(1))
    run(engine, t0 + s(2))
    assert [(t.from_status, t.to_status, t.changed_at) for t in run(engine, t0 + s(11))] == [
        ("up", "down", t0 + s(11))]


def test_fail_signal_is_down_at_once_with_its_message(engine, t0):
    add_agent(engine, "f", period_s=60, grace_s=30, created_at=t0)
    beat(engine, "f", t0 + s(1))
    run(engine, t0 + s(2))
    beat(engine, "f", t0 + s(5), kind="fail", message="model quota exhausted")
    (t,) = run(engine, t0 + s(6))
    assert (t.from_status, t.to_status, t.changed_at, t.reason, t.message) == (
        "up", "down", t0 + s(5), "fail", "model quota exhausted")
    assert agent_row(engine, "f").status_message == "model quota exhausted"


def test_start_without_success_before_grace_is_an_overrun(engine, t0):
    add_agent(engine, "job", period_s=3600, grace_s=60, created_at=t0)
    beat(engine, "job", t0 + s(10), kind="start")
    assert [t.to_status for t in run(engine, t0 + s(11))] == ["up"]
    assert run(engine, t0 + s(69)) == []                                      # still running, in grace
    (t,) = run(engine, t0 + s(100))
    assert (t.to_status, t.changed_at, t.reason) == ("down", t0 + s(70), "overrun")
    beat(engine, "job", t0 + s(120))                                          # the success arrives
    assert [(t.to_status, t.changed_at) for t in run(engine, t0 + s(121))] == [("up", t0 + s(120))]


def test_start_then_success_in_time_stays_up(engine, t0):
    add_agent(engine, "job2", period_s=3600, grace_s=60, created_at=t0)
    beat(engine, "job2", t0 + s(10), kind="start")
    run(engine, t0 + s(11))
    beat(engine, "job2", t0 + s(50))
    assert run(engine, t0 + s(200)) == []
    assert agent_row(engine, "job2").status == "up"


def test_never_heard_agent_goes_down_after_period_plus_grace(engine, t0):
    add_agent(engine, "silent", period_s=10, grace_s=5, created_at=t0)
    assert run(engine, t0 + s(14.9)) == []
    (t,) = run(engine, t0 + s(30))
    assert (t.from_status, t.to_status, t.changed_at, t.reason) == ("new", "down", t0 + s(15), "never_heard")


def test_pause_is_sticky_and_resume_sends_nothing(engine, t0):
    add_agent(engine, "p", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "p", t0 + s(1))
    run(engine, t0 + s(2))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET paused = true WHERE name = 'p'"))
    assert [(t.to_status, t.changed_at) for t in run(engine, t0 + s(3))] == [("paused", t0 + s(3))]
    beat(engine, "p", t0 + s(4))                                              # heartbeats do not undo it
    assert run(engine, t0 + s(5)) == []
    assert run(engine, t0 + s(500)) == []                                     # nor does silence
    beat(engine, "p", t0 + s(600))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET paused = false WHERE name = 'p'"))
    assert [(t.from_status, t.to_status) for t in run(engine, t0 + s(601))] == [("paused", "up")]


def test_resume_of_a_silent_agent_waits_a_period_before_down(engine, t0):
    """Regression: resuming an agent whose last heartbeat is old must not alert at once."""
    add_agent(engine, "r", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "r", t0 + s(1))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET paused = true WHERE name = 'r'"))
    run(engine, t0 + s(2))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET paused = false WHERE name = 'r'"))
    assert [(t.to_status, t.changed_at) for t in run(engine, t0 + s(1000))] == [("new", t0 + s(1000))]
    assert run(engine, t0 + s(1014)) == []
    assert [(t.to_status, t.changed_at) for t in run(engine, t0 + s(1016))] == [("down", t0 + s(1015))]


def test_future_agent_timestamp_never_extends_liveness_and_skew_is_kept(engine, t0):
    add_agent(engine, "skew", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "skew", t0 + s(1), sent_at=t0 + s(3601))                     # agent clock an hour ahead
    run(engine, t0 + s(2))
    row = agent_row(engine, "skew")
    assert row.clock_skew_s == 3600.0
    (t,) = run(engine, t0 + s(20))
    assert (t.to_status, t.changed_at) == ("down", t0 + s(16))                # judged on receive time


def test_placeholder_agents_are_not_judged(engine, t0):
    add_agent(engine, "ghost", period_s=10, grace_s=5, created_at=t0)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET placeholder = true WHERE name = 'ghost'"))
    assert run(engine, t0 + s(1000)) == []


def test_evaluation_without_now_uses_the_database_clock(engine):
    add_agent(engine, "n")
    with engine.begin() as conn:
        assert evaluate(conn, channels=["log"]) == []


def test_failure_followed_by_success_between_evaluations_still_alerts(engine, t0):
    """Regression: a fail and then an ok inside one evaluation interval must not go unnoticed."""
    add_agent(engine, "blip", period_s=60, grace_s=30, created_at=t0)
    beat(engine, "blip", t0 + s(1))
    run(engine, t0 + s(2))
    beat(engine, "blip", t0 + s(5), kind="fail", message="crashed")
    beat(engine, "blip", t0 + s(8))                                           # restarted, fine again
    (t,) = run(engine, t0 + s(10))
    assert (t.from_status, t.to_status, t.changed_at, t.reason) == ("up", "down", t0 + s(5), "failed_between")
    assert "reported a failure at" in t.message
    (t,) = run(engine, t0 + s(20))
    assert (t.from_status, t.to_status, t.changed_at) == ("down", "up", t0 + s(8))
    assert run(engine, t0 + s(30)) == []
    beat(engine, "blip", t0 + s(40), kind="fail", message="crashed again")    # a plain fail: its message
    (t,) = run(engine, t0 + s(41))
    assert (t.to_status, t.changed_at, t.reason, t.message) == ("down", t0 + s(40), "fail", "crashed again")


def test_a_down_agent_that_bounces_between_evaluations_is_recorded_twice(engine, t0):
    """Regression: a down agent that sent one heartbeat and went quiet again before the next
    evaluation stayed 'down' with its old since and message, so its recovery and its new
    outage were both lost. Both are recorded at their own times, the first alert is resolved at
    the heartbeat and a new one opens at the new deadline."""
    add_agent(engine, "bouncer", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "bouncer", t0 + s(1))
    run(engine, t0 + s(2), ["webhook"])
    run(engine, t0 + s(30), ["webhook"])                                       # down at 1 + 15
    beat(engine, "bouncer", t0 + s(40), message="back briefly")
    seen = run(engine, t0 + s(70), ["webhook"])                                # quiet again since 40
    assert sorted((t.from_status, t.to_status, t.changed_at, t.reason) for t in seen) == sorted([
        ("down", "up", t0 + s(40), "heartbeat"), ("up", "late", t0 + s(50), "late"),
        ("late", "down", t0 + s(55), "missed")])
    assert changes(engine, "bouncer")[-4:] == [
        ("up", "down", t0 + s(16), "missed"), ("down", "up", t0 + s(40), "heartbeat"),
        ("up", "late", t0 + s(50), "late"), ("late", "down", t0 + s(55), "missed")]
    row = agent_row(engine, "bouncer")
    assert (row.status, row.status_since) == ("down", t0 + s(55))
    assert "no heartbeat since" in row.status_message and "back briefly" not in row.status_message
    with engine.begin() as conn:
        alerts = conn.execute(sa.text("""SELECT opened_at, resolved_at FROM fleet.alerts
                                         WHERE kind = 'agent_down' ORDER BY alert_id""")).all()
        resolved = conn.execute(sa.text("""SELECT payload FROM fleet.notifications
                                           WHERE event = 'resolved' AND channel = 'webhook'""")).scalars().all()
        opened = conn.execute(sa.text("""SELECT count(*) FROM fleet.notifications
                                         WHERE event = 'opened' AND channel = 'webhook'""")).scalar_one()
    assert [tuple(a) for a in alerts] == [(t0 + s(16), t0 + s(40)), (t0 + s(55), None)]
    assert len(resolved) == 1 and resolved[0]["duration_s"] == 24.0
    assert opened == 2
    assert run(engine, t0 + s(80), ["webhook"]) == []                         # nothing recorded twice
