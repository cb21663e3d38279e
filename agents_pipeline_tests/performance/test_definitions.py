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
from agents_pipeline.defs.performance.assets import HOURS_PER_RUN, performance_rollups
from agents_pipeline.defs.performance.resources import PerformanceSettingsResource
from agents_pipeline.defs.performance.sampler import AgentSummary, sample_once
from agents_pipeline.defs.performance.sensors import performance_sampler_sensor
from agents_pipeline.platform.resources import PostgresResource


def _sensor_resources(db_url: str) -> dict:
    return {"postgres": PostgresResource(url=db_url), "performance_settings": PerformanceSettingsResource()}


def _records(value: dg.TableMetadataValue) -> list[dict]:
    return [dict(r.data) for r in value.records]


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
            instance=instance, resources=_sensor_resources(db_url)) as context:
        result = performance_sampler_sensor(context)
    assert isinstance(result, dg.SensorResult)
    [event] = result.asset_events
    assert event.asset_key == dg.AssetKey("performance_samples")
    meta = event.metadata
    for key in ("host_cpu_percent", "host_memory_percent", "host_load1", "host_sampler_cpu_ms"):
        assert isinstance(meta[key], dg.FloatMetadataValue), key
    assert 0.0 <= meta["host_cpu_percent"].value <= 100.0
    assert meta["agents_sampled"].value == 2 and meta["agents_missing"].value == 1
    assert "sensor-busy" in [r["agent"] for r in _records(meta["top_agents_by_cpu"])]
    [missing] = _records(meta["agents_not_found"])
    assert missing["agent"] == "sensor-gone" and "no process with pid 4000003" in missing["why"]
    # a second tick at once is skipped, not a noisy rate over milliseconds
    with dg.instance_for_test() as instance, dg.build_sensor_context(
            instance=instance, resources=_sensor_resources(db_url)) as context:
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
    assert meta["agents_p95_cpu_percent_max"].value == pytest.approx(18.05, abs=0.01)
    assert meta["agents_p95_rss_mib_max"].value == pytest.approx(18.05 / 1048576, abs=0.01)
    assert meta["raw_samples"].value == 60 and meta["dagster/row_count"].value == 3 and meta["agents"].value == 1
    [top] = _records(meta["top_agents_by_p95_cpu"])
    assert top["agent"] == "rolled" and top["p95_cpu_percent"] == pytest.approx(18.1, abs=0.06)
    assert not any("[" in key for key in meta), "no metadata key per agent (issue #21)"
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
            instance=instance, resources=_sensor_resources(db_url)) as context:
        with pytest.raises(dg.DagsterError, match="run `agents-pipeline db migrate`"):
            performance_sampler_sensor(context)


def test_agent_names_in_the_tables_cannot_add_links_or_images(db_url, engine, register):
    """Regression (issue #16): agent names (any text but control characters) and process problems
    went into markdown tables, so an agent could show operators links and images. The tables are
    MetadataValue.table now (cells rendered as text): no markdown at all, the name kept verbatim."""
    name = "![x](http://evil.example/t.png) [docs](www.evil.example) a|b"
    agent = register(name)
    hour = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT fleet.ensure_partitions('perf_samples', DATE '2026-03-02', DATE '2026-03-02')"))
        conn.execute(sa.text("INSERT INTO fleet.perf_samples (sampled_at, host, agent_id, metric, value) "
                             "VALUES (:h, 'perfhost', :a, 'cpu_percent', 5)"), {"h": hour, "a": agent})
    result = dg.materialize([performance_rollups], partition_key="2026-03-02-07:00",
                            resources={"postgres": PostgresResource(url=db_url)})
    meta = result.asset_materializations_for_node("performance_rollups")[0].metadata
    assert not [k for k, v in meta.items() if isinstance(v, dg.MarkdownMetadataValue)]
    assert [r["agent"] for r in _records(meta["top_agents_by_p95_cpu"])] == [name]
    gone = AgentSummary(agent, name, found=False, processes=0, cpu_percent=None, rss_bytes=None,
                        problem="pidfile says <img src=x>, see ops@evil.example")
    tables = report.top_agents_tables([gone])
    assert all(isinstance(v, dg.TableMetadataValue) for v in tables.values())
    assert _records(tables["agents_not_found"]) == [{"agent": name, "why": gone.problem}]


def test_a_backfill_range_is_one_run_and_reports_refused_hours(db_url, engine, register):
    """Issue #21: a backfill of hourly rollups started one run per hour. With the BackfillPolicy a
    range of hours is one run; an hour without samples in it is reported, not fatal."""
    assert performance_rollups.backfill_policy == dg.BackfillPolicy.multi_run(HOURS_PER_RUN)
    agent = register("ranged")
    start = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT fleet.ensure_partitions('perf_samples', DATE '2026-03-03', DATE '2026-03-03')"))
        conn.execute(sa.text(   # hours 0-4 sampled, hour 5 silent
            "INSERT INTO fleet.perf_samples (sampled_at, host, agent_id, metric, value) "
            "SELECT :s + make_interval(mins => m), 'perfhost', :a, 'cpu_percent', 10 + h "
            "FROM generate_series(0, 4) h, LATERAL generate_series(h * 60, h * 60 + 50, 10) m"),
            {"s": start, "a": agent})
    result = dg.materialize([performance_rollups], resources={"postgres": PostgresResource(url=db_url)},
                            tags={"dagster/asset_partition_range_start": "2026-03-03-00:00",
                                  "dagster/asset_partition_range_end": "2026-03-03-05:00"})
    mats = result.asset_materializations_for_node("performance_rollups")
    assert sorted(m.partition for m in mats) == [f"2026-03-03-0{h}:00" for h in range(6)]
    meta = mats[0].metadata
    assert (meta["hours"].value, meta["hours_refused"].value, meta["raw_samples"].value) == (5, 1, 30)
    assert "no raw samples for 2026-03-03 05:00 UTC" in meta["refused"].value
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(DISTINCT hour) FROM fleet.perf_rollups WHERE agent_id = :a"),
                            {"a": agent}).scalar_one() == 5
