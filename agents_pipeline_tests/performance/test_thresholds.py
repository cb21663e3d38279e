"""Thresholds with a duration, global and per-agent settings, and the alerts they raise."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from agents_pipeline.core.errors import ValidationError
from agents_pipeline.defs.performance import thresholds
from agents_pipeline.defs.performance.alerting import Verdict, agent_key, evaluate
from agents_pipeline.defs.performance.sampler import sample_once

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _alerts(engine, key=None):
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT alert_key, kind, agent_id, subject, opened_at, resolved_at FROM fleet.alerts "
            "WHERE :key IS NULL OR alert_key = :key ORDER BY alert_id"), {"key": key}).all()


def _cpu(agent_id, value, at, for_s=300.0):
    setting = thresholds.Setting(True, 90.0, for_s)
    return Verdict(agent_key("cpu_percent", agent_id), "cpu_percent", setting, value > 90.0, value, at,
                   "agent 'hot'", agent_id)


def _round(engine, *verdicts, now):
    with engine.begin() as conn:
        return evaluate(conn, list(verdicts), evaluator="perfhost", now=now)


def test_breach_shorter_than_duration_raises_nothing(engine, register):
    agent = register("hot")
    for minute in range(5):                        # 4 minutes over the line, then calm
        _round(engine, _cpu(agent, 99.0, T0 + timedelta(minutes=minute)), now=T0 + timedelta(minutes=minute))
    out = _round(engine, _cpu(agent, 10.0, T0 + timedelta(minutes=5)), now=T0 + timedelta(minutes=5))
    assert out.opened == [] and out.resolved == [] and _alerts(engine) == []
    # the next breach starts its clock again: 4 more minutes are still not enough
    for minute in range(6, 11):
        out = _round(engine, _cpu(agent, 99.0, T0 + timedelta(minutes=minute)), now=T0 + timedelta(minutes=minute))
    assert out.pending == [agent_key("cpu_percent", agent)] and _alerts(engine) == []


def test_breach_longer_than_duration_opens_once_and_resolves(engine, register):
    agent = register("hot")
    opened_at = None
    for minute in range(8):
        out = _round(engine, _cpu(agent, 99.0, T0 + timedelta(minutes=minute)), now=T0 + timedelta(minutes=minute))
        if out.opened:
            assert opened_at is None, "opened twice"
            opened_at = T0 + timedelta(minutes=minute)
    assert opened_at == T0 + timedelta(minutes=5)
    [alert] = _alerts(engine)
    assert (alert.kind, alert.agent_id, alert.resolved_at) == ("high_cpu", agent, None)
    assert alert.opened_at == opened_at and alert.subject == "agent 'hot': CPU above 90.0 % for 300 s (now 99.0 %)"
    out = _round(engine, _cpu(agent, 12.0, T0 + timedelta(minutes=9)), now=T0 + timedelta(minutes=9))
    assert out.resolved == [agent_key("cpu_percent", agent)]
    [alert] = _alerts(engine)
    assert alert.resolved_at == T0 + timedelta(minutes=9)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM fleet.perf_threshold_state")).scalar() == 0
        events = conn.execute(sa.text("SELECT event FROM fleet.notifications ORDER BY notification_id")).scalars().all()
    assert events == ["opened", "resolved"]


def test_unknown_value_keeps_the_clock(engine, register):
    """Regression: a baseline-only sample (sampler restarted) must neither resolve nor re-time."""
    agent = register("hot")
    _round(engine, _cpu(agent, 99.0, T0), now=T0)
    unknown = Verdict(agent_key("cpu_percent", agent), "cpu_percent", thresholds.Setting(True, 90.0, 300.0),
                      None, None, T0 + timedelta(minutes=3), "agent 'hot'", agent)
    _round(engine, unknown, now=T0 + timedelta(minutes=3))
    out = _round(engine, _cpu(agent, 99.0, T0 + timedelta(minutes=5)), now=T0 + timedelta(minutes=5))
    assert out.opened == [agent_key("cpu_percent", agent)]


def test_cpu_bound_agent_alerts_after_duration_and_resolves_when_calm(engine, spawn, register, quiet_host):
    """End to end with a real busy process: the clock is injected, the CPU time is real
    (0.6 s of real spinning per injected minute is about 1 % of a core, over the 0.2 % limit)."""
    busy = spawn("busy")
    agent = register("cruncher", pid=busy.pid, config={"thresholds": {"cpu_percent": {"above": 0.2, "for_s": 120}}})
    key = agent_key("cpu_percent", agent)
    start = datetime.now(UTC)
    outcomes = []
    for step in range(5):                       # t = 0 (baseline), 60, 120, 180, 240 s
        time.sleep(0.6)
        with engine.begin() as conn:
            outcomes.append(sample_once(conn, host="perfhost", now=start + timedelta(seconds=60 * step)).alerts)
    assert [o.opened for o in outcomes] == [[], [], [], [key], []]   # breach since 60 s, held 120 s at 180 s
    assert outcomes[2].pending == [key]
    os.kill(busy.pid, signal.SIGSTOP)           # calm: a stopped process uses no CPU
    try:
        resolved = []
        for step in (5, 6):                     # the first may still see the time spent before the stop
            time.sleep(0.2)
            with engine.begin() as conn:
                resolved += sample_once(conn, host="perfhost", now=start + timedelta(seconds=60 * step)).alerts.resolved
    finally:
        os.kill(busy.pid, signal.SIGCONT)
    assert resolved == [key]
    [alert] = _alerts(engine, key)
    assert alert.kind == "high_cpu" and alert.resolved_at is not None


def test_process_exit_opens_missing_alert_and_return_resolves(engine, spawn, register, quiet_host):
    proc = spawn()
    agent = register("worker", pid=proc.pid, config={"thresholds": {"process_missing": {"for_s": 0}}})
    key = agent_key("process_missing", agent)
    with engine.begin() as conn:
        assert sample_once(conn, host="perfhost").alerts.opened == []
    proc.kill()
    proc.wait()
    with engine.begin() as conn:
        result = sample_once(conn, host="perfhost", min_gap_s=0)
    assert [a.name for a in result.missing] == ["worker"] and result.alerts.opened == [key]
    [alert] = _alerts(engine, key)
    assert alert.kind == "process_missing" and alert.agent_id == agent and "process not found" in alert.subject
    back = spawn()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET process_pid = :p WHERE agent_id = :a"), {"p": back.pid, "a": agent})
        assert sample_once(conn, host="perfhost", min_gap_s=0).alerts.resolved == [key]


def test_paused_agent_is_not_missing(engine, register, quiet_host):
    agent = register("resting", pid=4_000_001, config={"thresholds": {"process_missing": {"for_s": 0}}})
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET paused = true WHERE agent_id = :a"), {"a": agent})
        result = sample_once(conn, host="perfhost")
    assert result.alerts.opened == [] and _alerts(engine) == []


def test_remote_agent_reports_are_judged_never_missing(engine, state, register, spawn, quiet_host):
    local = spawn()
    register("here", pid=local.pid, host="PerfHost")           # this host, by name in another case
    remote = register("far", host="elsewhere", config={"thresholds": {"cpu_percent": {"for_s": 0}}})
    register("far-pid", host="elsewhere", pid=4_000_002)         # a pid on another host means nothing here
    state.report_metrics({"cpu_percent": 180.0, "rss_bytes": 5e8}, agent="far", host="elsewhere")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.system_config SET value = CAST(:v AS jsonb) WHERE key = :k"),
                     {"v": json.dumps({**quiet_host, "process_missing": {"for_s": 0}}), "k": thresholds.CONFIG_KEY})
        result = sample_once(conn, host="perfhost")
    assert [a.name for a in result.agents] == ["here"] and result.remote_agents == 2
    assert result.missing == [] and result.alerts.opened == [agent_key("cpu_percent", remote)]
    [alert] = _alerts(engine)
    assert alert.kind == "high_cpu" and "on elsewhere" in alert.subject
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            "SELECT count(*) FROM fleet.perf_samples WHERE agent_id = :a AND source = 'sampler'"),
            {"a": remote}).scalar() == 0


def test_disk_rule_per_filesystem(engine):
    """Host rules judge every mounted filesystem on its own key, and resolve when relaxed."""
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.system_config SET value = CAST(:v AS jsonb) WHERE key = :k"),
                     {"v": json.dumps({"disk_used_percent": {"above": 0.0}}), "k": thresholds.CONFIG_KEY})
        result = sample_once(conn, host="perfhost")
    disk_keys = [k for k in result.alerts.opened if k.startswith("perf:disk_used_percent:host:perfhost:")]
    assert "perf:disk_used_percent:host:perfhost:/" in disk_keys
    assert {a.kind for a in _alerts(engine) if a.alert_key in disk_keys} == {"disk_full"}
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.system_config SET value = CAST(:v AS jsonb) WHERE key = :k"),
                     {"v": json.dumps({"disk_used_percent": {"above": 100.0}}), "k": thresholds.CONFIG_KEY})
        relaxed = sample_once(conn, host="perfhost", now=result.sampled_at + timedelta(seconds=60))
    assert sorted(k for k in relaxed.alerts.resolved if k in disk_keys) == sorted(disk_keys)


def test_settings_merge_and_invalid_layers_are_named():
    eff = thresholds.resolve({"cpu_percent": {"above": 80}, "disk_used_percent": {"above": 85, "for_s": 60}},
                             {1: ("a", {"cpu_percent": {"for_s": 30}}), 2: ("b", {"cpu_percent": {"above": "hot"}}),
                              3: ("c", {"disk_used_percent": {"above": 1}}), 4: ("d", None)})
    assert eff.fleet["cpu_percent"] == thresholds.Setting(True, 80.0, 300.0)
    assert eff.fleet["disk_used_percent"] == thresholds.Setting(True, 85.0, 60.0)
    assert eff.for_agent(1)["cpu_percent"] == thresholds.Setting(True, 80.0, 30.0)
    assert eff.for_agent(2) == eff.fleet and eff.for_agent(4) == eff.fleet
    assert len(eff.problems) == 2
    assert "agent 'b' config.thresholds.cpu_percent.above must be a number" in eff.problems[0]
    assert "applies to the host" in eff.problems[1]
    broken = thresholds.resolve({"cpu_precent": {}}, {})
    assert broken.fleet == thresholds.DEFAULTS and "unknown rule 'cpu_precent'" in broken.problems[0]


@pytest.mark.parametrize("layer, message", [
    ({"rss_bytes": {"above": -1}}, "between 0"),
    ({"rss_bytes": {"for_s": 10**9}}, "between 0"),
    ({"process_missing": {"above": 3}}, "takes no 'above'"),
    ({"cpu_percent": {"enabled": "yes"}}, "true or false"),
    ({"cpu_percent": {"severity": "loud"}}, "severity must be one of"),
    ({"cpu_percent": {"limit": 3}}, "unknown setting(s) limit"),
    ([1, 2], "must be a JSON object"),
])
def test_invalid_settings_are_refused(layer, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        thresholds.validate_layer(layer, agent=True)


def test_rss_limit_per_agent(engine, spawn, register, quiet_host):
    """RSS has no limit by default; an agent's own limit raises high_memory in MiB words."""
    proc = spawn()
    limited = register("limited", pid=proc.pid, config={"thresholds": {"rss_bytes": {"above": 1024, "for_s": 0}}})
    register("unlimited", pid=proc.pid)
    with engine.begin() as conn:
        result = sample_once(conn, host="perfhost")
    assert result.alerts.opened == [agent_key("rss_bytes", limited)]
    [alert] = _alerts(engine)
    assert alert.kind == "high_memory" and alert.subject.startswith("agent 'limited': resident memory above 0 MiB")
