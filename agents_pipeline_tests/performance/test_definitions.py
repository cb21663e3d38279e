"""The Dagster face: the definitions' shape, the sampler sensor's report, the rollup asset."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.definitions import load_domain
from agents_pipeline.defs.performance import report, settings
from agents_pipeline.defs.performance.assets import performance_rollups
from agents_pipeline.defs.performance.sampler import AgentSummary, sample_once
from agents_pipeline.defs.performance.sensors import performance_sampler_sensor
from agents_pipeline.platform.markdown import ZERO_WIDTH_SPACE
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.markdown_oracle import live_markup, table_rows


def test_definitions_shape():
    """Snapshot: a change to keys, cadence or default status shows up in review."""
    defs = dg.Definitions.merge(load_domain("performance"), dg.Definitions(
        resources={"postgres": PostgresResource(url="postgresql+psycopg2://nobody@localhost/none")}))
    repo = defs.get_repository_def()
    assert {str(k.path[-1]) for k in repo.asset_graph.get_all_asset_keys()} == {"performance_samples", "performance_rollups"}
    schedule = repo.get_schedule_def("performance_rollup_schedule")
    assert (schedule.cron_schedule, schedule.default_status) == ("5 * * * *", dg.DefaultScheduleStatus.RUNNING)
    assert schedule.job_name == "performance_rollup_job"
    sensor = repo.get_sensor_def("performance_sampler_sensor")
    assert (sensor.minimum_interval_seconds, sensor.default_status) == (60, dg.DefaultSensorStatus.RUNNING)
    rollups = repo.asset_graph.get(dg.AssetKey("performance_rollups"))
    assert isinstance(rollups.partitions_def, dg.HourlyPartitionsDefinition)
    assert rollups.group_name == "performance" and dg.AssetKey("performance_samples") in rollups.parent_keys


@pytest.mark.parametrize("raw, expected", [("", 60), ("15", 15), ("120.0", 120)])
def test_interval_setting(monkeypatch, raw, expected):
    monkeypatch.setenv(settings.INTERVAL_ENV, raw)
    assert settings.sample_interval_s() == expected


@pytest.mark.parametrize("raw", ["often", "1", "86400"])
def test_interval_setting_refused(monkeypatch, raw):
    monkeypatch.setenv(settings.INTERVAL_ENV, raw)
    with pytest.raises(ConfigurationError, match=settings.INTERVAL_ENV):
        settings.sample_interval_s()


def test_sensor_reports_numeric_host_metrics_and_top_agents(db_url, engine, spawn, register):
    busy = spawn("busy")
    register("sensor-busy", pid=busy.pid)
    register("sensor-gone", pid=4_000_003)
    with engine.begin() as conn:     # the previous tick, half a minute ago
        sample_once(conn, now=datetime.now(UTC) - timedelta(seconds=30))
    time.sleep(0.5)
    with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, resources={"postgres": PostgresResource(url=db_url)}) as context:
        result = performance_sampler_sensor(context)
    assert isinstance(result, dg.SensorResult)
    [event] = result.asset_events
    assert event.asset_key == dg.AssetKey("performance_samples")
    meta = event.metadata
    for key in ("host_cpu_percent", "host_memory_percent", "host_load1", "host_sampler_cpu_ms"):
        assert isinstance(meta[key], dg.FloatMetadataValue), key
    assert 0.0 <= meta["host_cpu_percent"].value <= 100.0
    assert meta["agents_sampled"].value == 2 and meta["agents_missing"].value == 1
    table = meta["top_agents"].value
    assert "**Top agents by CPU**" in table and "| sensor-busy |" in table
    assert "**Not found**" in table and "no process with pid 4000003" in table
    # a second tick at once is skipped, not a noisy rate over milliseconds
    with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, resources={"postgres": PostgresResource(url=db_url)}) as context:
        again = performance_sampler_sensor(context)
    assert isinstance(again, dg.SkipReason)


def test_rollup_asset_reports_p95(db_url, engine, register):
    agent = register("rolled")
    hour = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT fleet.ensure_partitions('perf_samples', DATE '2026-03-02', DATE '2026-03-02')"))
        conn.execute(sa.text(
            "INSERT INTO fleet.perf_samples (sampled_at, host, agent_id, metric, value) "
            "SELECT :h + make_interval(mins => i), 'perfhost', a, m, i "
            "FROM generate_series(0, 19) i, (VALUES (NULL::bigint, 'cpu_percent'), (:a, 'cpu_percent'), "
            "(:a, 'rss_bytes')) AS x(a, m)"), {"h": hour, "a": agent})
    resources = {"postgres": PostgresResource(url=db_url)}
    result = dg.materialize([performance_rollups], partition_key="2026-03-02-07:00", resources=resources)
    [mat] = result.asset_materializations_for_node("performance_rollups")
    meta = mat.metadata
    assert meta["p95_host_cpu_percent"].value == pytest.approx(18.05)
    assert meta["p95_cpu_percent[rolled]"].value == pytest.approx(18.05)
    assert meta["p95_rss_mib[rolled]"].value == pytest.approx(18.05 / 1048576)
    assert meta["raw_samples"].value == 60 and "| rolled |" in meta["p95_per_agent"].value
    empty = dg.materialize([performance_rollups], partition_key="2026-03-02-09:00", resources=resources,
                           raise_on_error=False)
    assert not empty.success
    failure = empty.get_step_failure_events()[0].step_failure_data.error
    assert "no raw samples for 2026-03-02 09:00 UTC" in failure.message


def test_sensor_names_a_missing_migration(db_url, engine):
    """Regression: a database without 0004 gets a message saying what to run, not a raw SQL error."""
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE fleet.perf_sampler_state"))
    with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, resources={"postgres": PostgresResource(url=db_url)}) as context:
        with pytest.raises(dg.DagsterError, match="run `agents-pipeline db migrate`"):
            performance_sampler_sensor(context)


def test_agent_names_in_the_tables_cannot_add_links_or_images(db_url, engine, register):
    """Regression (issue #16): agent names (any text but control characters) and process problems
    went into the markdown tables as they were, so an agent could show operators links and images."""
    name = "![x](http://evil.example/t.png) [docs](www.evil.example) a|b"
    agent = register(name)
    hour = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT fleet.ensure_partitions('perf_samples', DATE '2026-03-02', DATE '2026-03-02')"))
        conn.execute(sa.text("INSERT INTO fleet.perf_samples (sampled_at, host, agent_id, metric, value) "
                             "VALUES (:h, 'perfhost', :a, 'cpu_percent', 5)"), {"h": hour, "a": agent})
    result = dg.materialize([performance_rollups], partition_key="2026-03-02-07:00",
                            resources={"postgres": PostgresResource(url=db_url)})
    table = result.asset_materializations_for_node("performance_rollups")[0].metadata["p95_per_agent"].value
    assert live_markup(table) == [] and [r[0].replace(ZERO_WIDTH_SPACE, "") for r in table_rows(table)] == [name]
    gone = AgentSummary(agent, name, found=False, processes=0, cpu_percent=None, rss_bytes=None,
                        problem="pidfile says <img src=x>, see ops@evil.example")
    top = report.top_agents_table([gone])
    assert live_markup(top) == []
    assert [[c.replace(ZERO_WIDTH_SPACE, "") for c in r] for r in table_rows(top)] == [[name, gone.problem]]
