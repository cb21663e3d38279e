"""Agent.metric: custom metrics stored beside the sampled ones, and custom:<metric> threshold rules
that alert on them through the same machinery (duration, per-agent and fleet-wide layers)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from agents_pipeline.core import registry
from agents_pipeline.core.agent import Agent
from agents_pipeline.core.errors import ValidationError
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.defs.performance import thresholds
from agents_pipeline.defs.performance.sampler import sample_once


def _samples(engine, agent: str) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.text(
            "SELECT s.metric, s.value FROM fleet.perf_samples s JOIN fleet.agents a USING (agent_id) "
            "WHERE a.name = :n ORDER BY s.metric"), {"n": agent}).all()


def test_metric_is_stored_as_custom_beside_sampled_metrics(db_url, database, engine):
    token = registry.register_agent(database, "worker", host="elsewhere").token
    with SharedState(db_url, agent="worker", token=token, retry_window=5) as state:
        agent = Agent("worker", state=state, interval_s=60)
        agent.metric("queue_depth", 12)              # no heartbeat thread: sent at once
        assert _samples(engine, "worker") == [("custom:queue_depth", 12.0)]
        with agent:                                  # with the thread: sent with the next heartbeat
            agent.metric("queue_depth", 13)
            agent.metric("queue_depth", 14)          # a gauge: the latest value wins
            agent.metric("latency_ms", 2.5)
        for bad in (float("nan"), "7", True):
            with pytest.raises(ValidationError):
                agent.metric("queue_depth", bad)
        with pytest.raises(ValidationError, match="metric name"):
            agent.metric("no spaces", 1)
    stored = _samples(engine, "worker")
    assert ("custom:latency_ms", 2.5) in stored and ("custom:queue_depth", 14.0) in stored
    # 13 may have gone out with the thread's first heartbeat, if that ran between the two calls
    assert {v for m, v in stored if m == "custom:queue_depth"} <= {12.0, 13.0, 14.0}
    assert not any(m in ("cpu_percent", "rss_bytes") for m, _ in stored)


def test_custom_rules_are_validated_like_the_built_in_ones():
    thresholds.validate_layer({"custom:queue_depth": {"above": 100, "for_s": 60}}, agent=True)
    with pytest.raises(ValidationError, match="unknown rule 'queue_depth'"):
        thresholds.validate_layer({"queue_depth": {"above": 100}}, agent=True)
    with pytest.raises(ValidationError, match="unknown setting"):
        thresholds.validate_layer({"custom:queue_depth": {"below": 1}}, agent=True)
    eff = thresholds.resolve({"custom:queue_depth": {"above": 100}}, {1: ("a", {"custom:queue_depth": {"above": 5}})})
    assert eff.fleet["custom:queue_depth"].above == 100 and eff.for_agent(1)["custom:queue_depth"].above == 5
    assert thresholds.rule_for("custom:queue_depth").kind == "custom_metric"


def test_a_custom_threshold_opens_and_resolves_an_alert(db_url, database, engine, quiet_host):
    token = registry.register_agent(database, "worker").token
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.agents SET config = jsonb_set(config, '{thresholds}', CAST(:v AS jsonb)) "
                             "WHERE name = 'worker'"),
                     {"v": json.dumps({"custom:queue_depth": {"above": 100, "for_s": 0, "severity": "critical"}})})
    with SharedState(db_url, agent="worker", token=token, retry_window=5) as state:
        agent = Agent("worker", state=state, interval_s=60)
        agent.metric("queue_depth", 500)
        now = datetime.now(UTC)
        with engine.begin() as conn:
            opened = sample_once(conn, host="perfhost", now=now).alerts.opened
        with engine.connect() as conn:
            alert = conn.execute(sa.text("SELECT kind, severity, subject FROM fleet.alerts WHERE resolved_at IS NULL "
                                         "AND alert_key LIKE 'perf:custom:%'")).one()
        assert len(opened) == 1 and opened[0].startswith("perf:custom:queue_depth:agent:")
        assert (alert.kind, alert.severity) == ("custom_metric", "critical")
        assert alert.subject == "agent 'worker': metric queue_depth above 100 (now 500)"
        agent.metric("queue_depth", 3)
        with engine.begin() as conn:
            assert sample_once(conn, host="perfhost", now=now + timedelta(seconds=30)).alerts.resolved == opened
