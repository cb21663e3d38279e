"""The Dagster face: partitions only past retention, a run archives a day, schedules find the days."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pytest

from agents_pipeline.definitions import defs
from agents_pipeline.defs.retention import assets, checks, policy, schedules
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, seed_heartbeats


def test_definitions_snapshot():
    """Guards against an accidental change of keys, pools, partitions or schedules."""
    from agents_pipeline.definitions import load_domain

    domain = load_domain("retention")

    assert {a.key.to_user_string() for a in domain.assets} == {
        "raw_telemetry_archive", "history_archive", "database_maintenance"}
    assert {c.name for c in domain.asset_checks[0].check_specs} == {"retention_enforced"}
    raw = defs.resolve_assets_def("raw_telemetry_archive")
    assert raw.partitions_def.end_offset == -30 and raw.partitions_def.timezone == "UTC"
    assert defs.resolve_assets_def("history_archive").partitions_def.end_offset == -400
    assert raw.op.pool == assets.ARCHIVAL_POOL
    assert defs.resolve_assets_def("history_archive").op.pool == assets.ARCHIVAL_POOL
    crons = {s.name: (s.cron_schedule, s.default_status) for s in domain.schedules}
    assert crons == {
        "raw_telemetry_archive_schedule": ("20 2 * * *", dg.DefaultScheduleStatus.RUNNING),
        "history_archive_schedule": ("40 2 * * *", dg.DefaultScheduleStatus.RUNNING),
        "database_maintenance_schedule": ("10 3 * * *", dg.DefaultScheduleStatus.RUNNING),
    }


def test_partitions_exist_only_for_days_past_retention():
    keys = assets.raw_telemetry_archive.partitions_def.get_partition_keys()
    assert keys[-1] == policy.last_archivable_day(30).isoformat()


def test_materializing_a_partition_archives_that_day(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 300)
    result = dg.materialize([assets.raw_telemetry_archive], partition_key=OLD_DAY.isoformat(),
                            resources={"postgres": PostgresResource(url=db_url)}, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    meta = result.asset_materializations_for_node("raw_telemetry_archive")[0].metadata
    assert meta["rows_archived"].value == 300 and meta["archive_bytes"].value > 0
    assert meta["max_remove_ms"].value > 0
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(0,)]


def test_a_key_inside_retention_is_refused(db_url, archive_dir, monkeypatch):
    """The partitions were cut at load time; a longer retention set since must still be honoured."""
    monkeypatch.setenv(policy.RETENTION_ENV, "heartbeats=60,perf_samples=60,tasks=60")
    seed_heartbeats(db_url, OLD_DAY, 10)
    with pytest.raises(dg.Failure, match="still inside retention for every table"):
        dg.materialize([assets.raw_telemetry_archive], partition_key=OLD_DAY.isoformat(),
                       resources={"postgres": PostgresResource(url=db_url)}, instance=dg.DagsterInstance.ephemeral())
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(10,)]


def test_archival_without_an_archive_folder_does_nothing_and_says_so(db_url, monkeypatch):
    monkeypatch.setenv(policy.ARCHIVE_DIR_ENV, "off")
    seed_heartbeats(db_url, OLD_DAY, 10)
    with pytest.raises(dg.Failure, match="archival is off"):
        dg.materialize([assets.raw_telemetry_archive], partition_key=OLD_DAY.isoformat(),
                       resources={"postgres": PostgresResource(url=db_url)}, instance=dg.DagsterInstance.ephemeral())
    with dg.build_schedule_context(resources={"postgres": PostgresResource(url=db_url)}) as ctx:
        skipped = schedules.raw_telemetry_archive_schedule(ctx)
    assert isinstance(skipped, dg.SkipReason) and "archival is off" in skipped.skip_message
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(10,)]


def test_schedule_requests_every_day_past_retention_still_held(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 10)
    seed_heartbeats(db_url, OLD_DAY - timedelta(days=3), 10)
    with dg.build_schedule_context(resources={"postgres": PostgresResource(url=db_url)}) as ctx:
        requests = schedules.raw_telemetry_archive_schedule(ctx)
    assert sorted(r.partition_key for r in requests) == [(OLD_DAY - timedelta(days=3)).isoformat(), OLD_DAY.isoformat()]
    with dg.build_schedule_context(resources={"postgres": PostgresResource(url=db_url)}) as ctx:
        history = schedules.history_archive_schedule(ctx)
    assert isinstance(history, dg.SkipReason)


def test_retention_check_fails_then_passes(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 10)
    failing = checks.retention_enforced(postgres=PostgresResource(url=db_url))
    assert not failing.passed and "heartbeats holds" in failing.description
    dg.materialize([assets.raw_telemetry_archive], partition_key=OLD_DAY.isoformat(),
                   resources={"postgres": PostgresResource(url=db_url)}, instance=dg.DagsterInstance.ephemeral())
    passing = checks.retention_enforced(postgres=PostgresResource(url=db_url))
    assert passing.passed and passing.metadata["heartbeats_overdue_days"].value == 0
