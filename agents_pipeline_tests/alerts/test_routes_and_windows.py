"""A fleet file's alert routes and silence windows, acted on (issue #18): routes choose the
channels of every notice of the agent's alerts (the log channel always), and a silence window
holds the agent's opened notices until it ends."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa

from agents_pipeline.defs.alerts.store import open_alert
from agents_pipeline.defs.heartbeats.health import evaluate
from agents_pipeline_tests.heartbeats.helpers import add_agent, beat, notifications, s

CHANNELS = ["log", "webhook", "email"]


def _config(engine, name: str, config: dict) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET config = config || CAST(:c AS jsonb) WHERE name = :n"),
                     {"c": json.dumps(config), "n": name})


def _in_window(engine, config: dict, at: datetime) -> bool:
    with engine.begin() as conn:
        return conn.execute(sa.text("SELECT fleet.in_silence_window(CAST(:c AS jsonb), :at)"),
                            {"c": json.dumps(config), "at": at}).scalar_one()


def test_routes_choose_the_channels_of_every_notice(engine, t0):
    add_agent(engine, "routed", period_s=10, grace_s=5, created_at=t0)
    add_agent(engine, "everywhere", period_s=10, grace_s=5, created_at=t0)
    _config(engine, "routed", {"alert_routes": ["email"]})
    for name in ("routed", "everywhere"):
        beat(engine, name, t0 + s(1))
    with engine.begin() as conn:
        evaluate(conn, now=t0 + s(2), channels=CHANNELS)
        evaluate(conn, now=t0 + s(20), channels=CHANNELS)          # both down: opened notices
    for name in ("routed", "everywhere"):
        beat(engine, name, t0 + s(21))
    with engine.begin() as conn:
        evaluate(conn, now=t0 + s(22), channels=CHANNELS)          # both back: resolved notices
        agent_id = conn.execute(sa.text("SELECT agent_id FROM fleet.agents WHERE name = 'routed'")).scalar_one()
        open_alert(conn, key="test:routed", kind="threshold", subject="routed is hot", agent_id=agent_id)
    sent = {}
    for row in notifications(engine):
        agent = row.payload.get("agent") or "routed"
        sent.setdefault(agent, set()).add((row.event, row.channel))
    assert sent["routed"] == {("opened", "log"), ("opened", "email"), ("resolved", "log"), ("resolved", "email")}
    assert sent["everywhere"] == {(e, c) for e in ("opened", "resolved") for c in CHANNELS}


def test_a_silence_window_holds_opened_notices_until_it_ends(engine, t0):
    start = t0.astimezone(UTC)
    window = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
              "start": (start + s(-60)).strftime("%H:%M"), "end": (start + s(600)).strftime("%H:%M")}
    # Near midnight the window's end comes before its start: it then runs past midnight, as below.
    add_agent(engine, "maintained", period_s=10, grace_s=5, created_at=t0)
    _config(engine, "maintained", {"silence_windows": [window]})
    beat(engine, "maintained", t0 + s(1))
    with engine.begin() as conn:
        evaluate(conn, now=t0 + s(2), channels=CHANNELS)
        down = evaluate(conn, now=t0 + s(20), channels=CHANNELS)
    assert [t.to_status for t in down] == ["down"]
    assert notifications(engine) == []                             # inside the window: held
    with engine.begin() as conn:
        evaluate(conn, now=t0 + s(720), channels=CHANNELS)        # the window ended, still down
    assert sorted(r.channel for r in notifications(engine) if r.event == "opened") == sorted(CHANNELS)


def test_silence_windows_by_day_and_past_midnight(engine):
    sat_0130 = datetime(2026, 12, 5, 1, 30, tzinfo=UTC)       # a Saturday
    sat_2330 = datetime(2026, 12, 5, 23, 30, tzinfo=UTC)
    sun_0130 = datetime(2026, 12, 6, 1, 30, tzinfo=UTC)
    night = {"silence_windows": [{"days": ["sat"], "start": "23:00", "end": "02:00"}]}
    assert _in_window(engine, night, sat_2330) and _in_window(engine, night, sun_0130)
    assert not _in_window(engine, night, sat_0130)                 # Friday's night was not listed
    morning = {"silence_windows": [{"days": ["sat"], "start": "01:00", "end": "02:00"}]}
    assert _in_window(engine, morning, sat_0130) and not _in_window(engine, morning, sun_0130)
    # A window edited by hand into nonsense is ignored, never an error in the evaluation.
    for broken in ({"silence_windows": [{"days": "sat", "start": "01:00", "end": "02:00"}]},
                   {"silence_windows": [{"days": ["sat"], "start": "1am", "end": "02:00"}]},
                   {"silence_windows": "always"}, {}):
        assert _in_window(engine, broken, sat_0130) is False
