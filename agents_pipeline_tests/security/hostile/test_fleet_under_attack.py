"""The fleet's service while mallory attacks: the attack and the evaluator ran, every honest
heartbeat was stored and stayed fast, and the agent that went silent was alerted on in time."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta

from agents_pipeline_tests.security.hostile.timeline import ATTACK_BEATS, HONEST, IDLE_BEATS, query


def test_the_attacker_ran_and_the_evaluator_never_failed(timeline):
    assert "mallory crashed" not in timeline.outcomes, timeline.outcomes.get("mallory crashed")
    assert timeline.evaluator_errors == []


def test_every_honest_heartbeat_is_stored(timeline):
    assert timeline.honest_errors == []
    rows = query(timeline, """SELECT a.name, count(h.*) FROM fleet.agents a
                              LEFT JOIN fleet.heartbeats h ON h.agent_id = a.agent_id
                              WHERE a.name LIKE 'honest-%' GROUP BY a.name""")
    assert len(rows) == HONEST
    assert {n for _, n in rows} == {IDLE_BEATS + ATTACK_BEATS}


def test_honest_latency_under_attack_stays_within_twice_idle_plus_50_ms(timeline):
    idle = statistics.quantiles(timeline.idle_ms, n=100)[98]
    attack = statistics.quantiles(timeline.attack_ms, n=100)[98]
    assert len(timeline.attack_ms) >= HONEST * ATTACK_BEATS
    assert attack <= 2 * idle + 50, f"p99 idle {idle:.1f} ms, under attack {attack:.1f} ms"


def test_the_silent_agent_goes_down_and_its_alert_arrives_within_30_s(timeline):
    opened = [p for p in timeline.webhook if p.get("agent") == "quiet-one" and p.get("event") == "opened"]
    assert len(opened) == 1, timeline.webhook
    opened_at = datetime.fromisoformat(opened[0]["opened_at"])
    assert opened_at == timeline.quiet_deadline
    status = query(timeline, "SELECT status FROM fleet.agents WHERE name = 'quiet-one'")
    assert status == [("down",)]
    delivered = query(timeline, """SELECT max(n.delivered_at) FROM fleet.notifications n
                                   JOIN fleet.alerts a USING (alert_id) JOIN fleet.agents g USING (agent_id)
                                   WHERE g.name = 'quiet-one' AND n.channel = 'webhook'""")[0][0]
    assert delivered - timeline.quiet_deadline < timedelta(seconds=30)
