"""One agent's story (issue #21): the tables an operator reads on its page, and the sensor that
keeps a partition per agent and refreshes the ones that changed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from agents_pipeline.defs.agents.assets import AGENT_PARTITIONS, agent_story, valid_partition_key
from agents_pipeline.defs.agents.sensors import MAX_PER_TICK, agent_story_sensor
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.heartbeats.helpers import add_agent


def _records(value: dg.TableMetadataValue) -> list[dict]:
    return [dict(r.data) for r in value.records]


def _history(engine: sa.Engine, agent_id: int, name: str, now: datetime) -> None:
    """Heartbeats with one 11-minute silence, two status changes, an open alert, an hour of
    rollups and a day of LLM usage."""
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT fleet.ensure_partitions('heartbeats', :d - 1, :d)"), {"d": now.date()})
        conn.execute(sa.text("""
            INSERT INTO fleet.heartbeats (agent_id, received_at, sent_at, kind)
            SELECT :a, t, t, 'ok' FROM generate_series(:now - interval '2 hours', :now, interval '1 minute') t
            WHERE t NOT BETWEEN :now - interval '70 minutes' AND :now - interval '61 minutes'"""),
            {"a": agent_id, "now": now})
        conn.execute(sa.text("""
            INSERT INTO fleet.status_changes (agent_id, from_status, to_status, changed_at, reason, message)
            VALUES (:a, 'up', 'down', :now - interval '69 minutes', 'missed', 'no heartbeat within period + grace'),
                   (:a, 'down', 'up', :now - interval '60 minutes', 'heartbeat', 'heartbeats resumed')"""),
            {"a": agent_id, "now": now})
        conn.execute(sa.text("""
            INSERT INTO fleet.alerts (alert_key, kind, severity, agent_id, subject, opened_at)
            VALUES ('high_cpu:' || :a, 'high_cpu', 'warning', :a, :subject, :now)"""),
            {"a": agent_id, "now": now, "subject": f"{name} uses a lot of CPU"})
        conn.execute(sa.text("""
            INSERT INTO fleet.perf_rollups (hour, host, agent_id, metric, samples, min_value, mean_value,
                                            p50_value, p95_value, max_value)
            VALUES (date_trunc('hour', :now) - interval '1 hour', 'h', :a, 'cpu_percent', 12, 1, 40, 40, 85, 90),
                   (date_trunc('hour', :now) - interval '1 hour', 'h', :a, 'rss_bytes', 12, 1, 1, 1, 104857600, 209715200)"""),
            {"a": agent_id, "now": now})
        conn.execute(sa.text("""
            INSERT INTO fleet.llm_usage_daily (day, agent, model, runs, errors, prompt_tokens, completion_tokens,
                                               total_cost, from_langsmith, from_local)
            VALUES (:d, :n, 'm1', 10, 1, 1000, 500, 0.25, 0, 10), (:d, :n, 'm2', 5, 0, 100, 50, 0.05, 0, 5)"""),
            {"d": now.date(), "n": name})


def test_story_metadata_tells_what_happened_to_the_agent(db_url, engine):
    now = datetime.now(UTC).replace(microsecond=0)
    agent_id = add_agent(engine, "storied", period_s=60, grace_s=30, created_at=now - timedelta(hours=3))
    _history(engine, agent_id, "storied", now)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(AGENT_PARTITIONS.name, ["storied"])
        result = dg.materialize([agent_story], partition_key="storied", instance=instance,
                                resources={"postgres": PostgresResource(url=db_url)})
    [mat] = result.asset_materializations_for_node("agent_story")
    meta = mat.metadata
    changes = _records(meta["status_changes"])
    assert [(c["from"], c["to"], c["reason"]) for c in changes] == [("down", "up", "heartbeat"), ("up", "down", "missed")]
    [gap] = _records(meta["heartbeat_gaps"])
    assert gap["seconds"] == pytest.approx(660, abs=1)        # heard at -71 min, then at -60 min
    assert meta["heartbeat_gaps_6h"].value == 1
    [hour] = _records(meta["cpu_and_memory_by_hour"])
    assert (hour["p95_cpu_percent"], hour["p95_rss_mib"], hour["max_rss_mib"]) == (85.0, 100.0, 200.0)
    assert meta["p95_cpu_percent_last_hour"].value == 85.0
    [day] = _records(meta["llm_by_day"])
    assert (day["runs"], day["errors"], day["tokens"], day["cost_usd"]) == (15, 1, 1650, 0.3)
    assert meta["llm_tokens_14d"].value == 1650 and meta["llm_cost_usd_14d"].value == pytest.approx(0.3)
    [alert] = _records(meta["open_alerts_table"])
    assert (alert["kind"], alert["subject"]) == ("high_cpu", "storied uses a lot of CPU")
    assert meta["open_alerts"].value == 1
    numeric = [k for k, v in meta.items() if isinstance(v, (dg.IntMetadataValue, dg.FloatMetadataValue))]
    assert len(numeric) <= 10, numeric       # plotted across agents: a handful, whatever the fleet size


def test_unknown_agent_fails_with_its_name(db_url):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(AGENT_PARTITIONS.name, ["nobody-here"])
        result = dg.materialize([agent_story], partition_key="nobody-here", instance=instance, raise_on_error=False,
                                resources={"postgres": PostgresResource(url=db_url)})
    assert not result.success
    assert "no agent named 'nobody-here'" in result.get_step_failure_events()[0].step_failure_data.error.message


def _tick(instance: dg.DagsterInstance, db_url: str, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor,
                                 resources={"postgres": PostgresResource(url=db_url)}) as context:
        return agent_story_sensor(context)


def test_sensor_adds_partitions_and_refreshes_changed_agents(db_url, engine):
    """A new agent gets a partition and a story at once; after that, only agents that changed
    (and a few in turn) are refreshed; a fleet bigger than a tick is covered over several ticks."""
    n = MAX_PER_TICK + 30
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO fleet.agents (name, period, grace) "
                             "SELECT 'fleet-' || lpad(i::text, 4, '0'), interval '60 s', interval '30 s' "
                             "FROM generate_series(1, :n) i"), {"n": n})
        conn.execute(sa.text("INSERT INTO fleet.agents (name, period, grace) VALUES ('bad...name', '60 s', '30 s')"))
    with dg.instance_for_test() as instance:
        first = _tick(instance, db_url, None)
        partitions = set(instance.get_dynamic_partitions(AGENT_PARTITIONS.name))
        assert len(partitions) == n and "bad...name" not in partitions
        assert len(first.asset_events) == MAX_PER_TICK            # bounded: the rest next tick
        second = _tick(instance, db_url, first.cursor)
        covered = {e.partition for e in first.asset_events} | {e.partition for e in second.asset_events}
        assert covered == partitions
        third = _tick(instance, db_url, second.cursor)            # nothing changed: the round robin only
        assert 0 < len(third.asset_events) <= 50
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE fleet.agents SET status = 'down', status_since = now() "
                                 "WHERE name = 'fleet-0007'"))
        fourth = _tick(instance, db_url, third.cursor)
        assert "fleet-0007" in {e.partition for e in fourth.asset_events}
        assert json.loads(fourth.cursor)["since"]


@pytest.mark.parametrize("name, ok", [("demo-planner", True), ("a...b", False), ("a,b", False), ("tab\there", False),
                                      ("[x](http://evil.example)", True)])
def test_partition_keys_dagster_accepts(name, ok):
    assert valid_partition_key(name) is ok


def test_history_start_setting_and_the_migration_note(monkeypatch):
    from agents_pipeline.core.errors import ConfigurationError
    from agents_pipeline.platform import history_start as hs

    monkeypatch.delenv(hs.HISTORY_START_ENV, raising=False)
    assert hs.history_start() == hs.DEFAULT_HISTORY_START
    assert hs.history_start_note(datetime(2025, 6, 1)) is None
    note = hs.history_start_note(datetime(2024, 12, 30, 23, 0))       # naive: UTC, as legacy files store it
    assert note.startswith("imported data starts on 2024-12-30, before the partitions' first day 2025-01-01")
    assert f"{hs.HISTORY_START_ENV}=2024-12-30" in note
    monkeypatch.setenv(hs.HISTORY_START_ENV, "2023-05-01")
    assert hs.history_start() == date(2023, 5, 1) and hs.history_start_note(date(2024, 12, 30)) is None
    monkeypatch.setenv(hs.HISTORY_START_ENV, "last year")
    with pytest.raises(ConfigurationError, match=hs.HISTORY_START_ENV):
        hs.history_start()
