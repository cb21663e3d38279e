"""Alerts raised by the evaluator: opened, reminded, resolved with the downtime, silenced, grouped."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from agents_pipeline.defs.heartbeats.health import evaluate
from agents_pipeline_tests.heartbeats.helpers import add_agent, beat, notifications, s


def run(engine: sa.Engine, now: datetime, *, reminder_s: float | None = 600, channels=("log", "webhook")):
    with engine.begin() as conn:
        return evaluate(conn, now=now, channels=list(channels), reminder_s=reminder_s)


def alerts(engine: sa.Engine) -> list[sa.Row]:
    with engine.begin() as conn:
        return conn.execute(sa.text("SELECT * FROM fleet.alerts ORDER BY alert_id")).all()


def events(engine: sa.Engine, channel: str = "webhook") -> list[tuple[str, str]]:
    return [(n.event, n.payload.get("agent") or n.payload["kind"]) for n in notifications(engine)
            if n.channel == channel]


def test_down_opens_one_alert_per_channel_and_recovery_resolves_with_downtime(engine, t0):
    add_agent(engine, "w", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "w", t0 + s(1))
    run(engine, t0 + s(2))
    run(engine, t0 + s(20))                                                   # down at 16
    run(engine, t0 + s(30))                                                   # still down: nothing new
    (alert,) = alerts(engine)
    assert (alert.kind, alert.alert_key, alert.opened_at, alert.resolved_at) == (
        "agent_down", f"agent_down:{alert.agent_id}", t0 + s(16), None)
    opened = notifications(engine)
    assert [(n.event, n.channel) for n in opened] == [("opened", "log"), ("opened", "webhook")]
    assert opened[1].payload["idempotency_key"] == f"alert:{alert.alert_id}:opened"
    assert opened[1].idempotency_key == f"alert:{alert.alert_id}:opened:webhook"
    assert opened[1].payload["agent"] == "w"
    beat(engine, "w", t0 + s(136))
    run(engine, t0 + s(137))
    (alert,) = alerts(engine)
    assert alert.resolved_at == t0 + s(136)
    resolved = [n for n in notifications(engine) if n.event == "resolved" and n.channel == "webhook"]
    assert len(resolved) == 1
    assert resolved[0].payload["duration_s"] == 120.0                          # 16 -> 136
    assert resolved[0].payload["agent_status"] == "up"


def test_recovery_seen_only_once_late_again_ends_the_downtime_at_the_heartbeat(engine, t0):
    """One heartbeat after the outage, then quiet again before an evaluation saw the agent up
    (evaluations 10 s or more apart, period 10 s): the downtime ends at that heartbeat, not
    one period later when 'late' began."""
    add_agent(engine, "blip", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "blip", t0 + s(1))
    run(engine, t0 + s(2))
    run(engine, t0 + s(20))                                                   # down at 16
    beat(engine, "blip", t0 + s(40))
    (change,) = run(engine, t0 + s(51))                                       # late since 50
    assert (change.from_status, change.to_status, change.changed_at) == ("down", "late", t0 + s(50))
    (alert,) = alerts(engine)
    assert alert.resolved_at == t0 + s(40)
    (resolved,) = [n for n in notifications(engine) if n.event == "resolved" and n.channel == "webhook"]
    assert resolved.payload["duration_s"] == 24.0                             # 16 -> 40, not 34
    assert resolved.payload["agent_status"] == "late"


def test_an_evaluator_held_up_still_ends_the_downtime_at_the_first_heartbeat_back(engine, t0):
    """The soak (issue #19) found this: with the daemon restarting, the evaluation that saw the
    agent back came 35 s after its first heartbeat; the downtime ended at the latest one."""
    add_agent(engine, "back", period_s=5, grace_s=10, created_at=t0)
    beat(engine, "back", t0 + s(1))
    run(engine, t0 + s(2))
    run(engine, t0 + s(20))                                                   # down at 16
    for at in (60, 65, 70, 75, 80, 85, 90, 95):                               # back at 60, seen at 96
        beat(engine, "back", t0 + s(at))
    run(engine, t0 + s(96))
    (alert,) = alerts(engine)
    assert alert.resolved_at == t0 + s(60)
    (resolved,) = [n for n in notifications(engine) if n.event == "resolved" and n.channel == "webhook"]
    assert resolved.payload["duration_s"] == 44.0                             # 16 -> 60, not 95


def test_new_to_up_and_paused_to_up_send_nothing(engine, t0):
    add_agent(engine, "quiet", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "quiet", t0 + s(1))
    run(engine, t0 + s(2))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET paused = true WHERE name = 'quiet'"))
    run(engine, t0 + s(3))
    beat(engine, "quiet", t0 + s(4))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET paused = false WHERE name = 'quiet'"))
    assert [t.to_status for t in run(engine, t0 + s(5))] == ["up"]
    assert alerts(engine) == [] and notifications(engine) == []


def test_reminders_at_the_interval_while_down_then_stop(engine, t0):
    add_agent(engine, "r", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "r", t0 + s(1))
    run(engine, t0 + s(2))
    run(engine, t0 + s(20))                                                   # opened, notified at 20
    run(engine, t0 + s(300))                                                  # before 20 + 600
    assert events(engine) == [("opened", "r")]
    run(engine, t0 + s(620))
    run(engine, t0 + s(621))                                                  # no second reminder
    run(engine, t0 + s(1220))
    reminders = [n for n in notifications(engine) if n.event == "reminder" and n.channel == "webhook"]
    assert [round(n.payload["down_for_s"]) for n in reminders] == [604, 1204]
    assert len({n.idempotency_key for n in reminders}) == 2
    beat(engine, "r", t0 + s(1300))
    run(engine, t0 + s(1301))
    run(engine, t0 + s(1305))
    assert events(engine) == [("opened", "r"), ("reminder", "r"), ("reminder", "r"), ("resolved", "r")]


def test_reminders_can_be_switched_off(engine, t0):
    add_agent(engine, "off", period_s=10, grace_s=5, created_at=t0)
    run(engine, t0 + s(20), reminder_s=None)
    run(engine, t0 + s(100000), reminder_s=None)
    assert events(engine) == [("opened", "off")]


def test_silence_holds_notices_until_it_expires(engine, t0):
    add_agent(engine, "maint", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "maint", t0 + s(1))
    run(engine, t0 + s(2))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET silenced_until = :u WHERE name = 'maint'"),
                     {"u": t0 + s(100)})
    run(engine, t0 + s(20))
    run(engine, t0 + s(99))
    (alert,) = alerts(engine)                                                 # recorded, not sent
    assert alert.last_notified_at is None and notifications(engine) == []
    run(engine, t0 + s(101))                                                  # the silence expired
    assert events(engine) == [("opened", "maint")]
    assert alerts(engine)[0].last_notified_at == t0 + s(101)


def test_recovery_inside_a_silence_sends_no_resolved_notice(engine, t0):
    add_agent(engine, "m2", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "m2", t0 + s(1))
    run(engine, t0 + s(2))
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET silenced_until = :u WHERE name = 'm2'"), {"u": t0 + s(100)})
    run(engine, t0 + s(20))
    beat(engine, "m2", t0 + s(50))
    run(engine, t0 + s(51))
    assert alerts(engine)[0].resolved_at == t0 + s(50)
    run(engine, t0 + s(60))
    assert notifications(engine) == []


def test_fleet_collapse_sends_one_incident_instead_of_one_per_agent(engine, t0):
    names = [f"c{i}" for i in range(6)]
    for name in names:
        add_agent(engine, name, period_s=10, grace_s=5, created_at=t0)
        beat(engine, name, t0 + s(1))
    run(engine, t0 + s(2))
    for name in names[:2]:                                                    # two keep beating
        beat(engine, name, t0 + s(15))
    down = run(engine, t0 + s(20))
    assert sorted(t.name for t in down if t.to_status == "down") == names[2:]  # 4 of 6 at once
    assert events(engine) == [("incident", "incident")]
    (incident,) = [a for a in alerts(engine) if a.kind == "incident"]
    assert incident.details["agents"] == names[2:] and incident.severity == "critical"
    assert len([a for a in alerts(engine) if a.kind == "agent_down"]) == 4    # recorded, held back
    run(engine, t0 + s(21))
    assert events(engine) == [("incident", "incident")]
    for name in names[:4]:                                                    # two recover: 2 of 6 down
        beat(engine, name, t0 + s(30))
    run(engine, t0 + s(31))
    got = events(engine)
    assert got[0] == ("incident", "incident")
    assert sorted(got[1:]) == [("opened", "c4"), ("opened", "c5"), ("resolved", "incident")]
    resolved = [n for n in notifications(engine) if n.event == "resolved" and n.channel == "webhook"]
    assert resolved[0].payload["duration_s"] == 11.0


def test_collapse_guard_needs_a_fleet_of_five(engine, t0):
    for name in ("s1", "s2", "s3", "s4"):
        add_agent(engine, name, period_s=10, grace_s=5, created_at=t0)
        beat(engine, name, t0 + s(1))
    run(engine, t0 + s(2))
    run(engine, t0 + s(20))
    assert sorted(events(engine)) == [("opened", n) for n in ("s1", "s2", "s3", "s4")]


def test_gradual_failures_alert_one_by_one(engine, t0):
    for i in range(6):
        add_agent(engine, f"g{i}", period_s=10 + 20 * i, grace_s=5, created_at=t0)
        beat(engine, f"g{i}", t0 + s(1))
    run(engine, t0 + s(2))
    for k in range(4):
        run(engine, t0 + s(17 + 20 * k))
    assert [e for e in events(engine)] == [("opened", f"g{i}") for i in range(4)]
