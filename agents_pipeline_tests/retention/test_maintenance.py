"""Partitions ahead, statistics on parents, and the retention check that catches a stalled janitor."""

from __future__ import annotations

from datetime import timedelta

from agents_pipeline.defs.retention import maintenance, policy
from agents_pipeline.defs.retention.archiver import archive_day
from agents_pipeline.defs.retention.checks import retention_overdue
from agents_pipeline.defs.retention.restore import restore_day
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, seed_heartbeats

DEFAULTS = policy.parse_retention("")


def test_future_partitions_are_present_for_the_next_two_weeks(db_url):
    today = policy.utc_today()
    created = maintenance.create_partitions_ahead(db_url, today)
    assert created >= 2 * 6   # the template made today+7; two weeks ahead needs more
    for table in ("heartbeats", "perf_samples"):
        for offset in range(-1, maintenance.DAYS_AHEAD + 1):
            day = today + timedelta(days=offset)
            assert execute(db_url, "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass(%s)",
                           (f"fleet.{table}_p{day:%Y%m%d}",)) == [(False,)], (table, day)
    assert maintenance.create_partitions_ahead(db_url, today) == 0
    # Inserts at the far end land in their partition.
    execute(db_url, "INSERT INTO fleet.heartbeats (agent_id, received_at) VALUES (1, %s)",
            (f"{today + timedelta(days=maintenance.DAYS_AHEAD)} 12:00:00+00",))


def test_maintenance_analyzes_parents_and_reports_sizes(db_url):
    seed_heartbeats(db_url, policy.utc_today(), 500)
    report = maintenance.run_maintenance(db_url, DEFAULTS)
    assert report.analyzed == ["heartbeats", "perf_samples"]
    assert execute(db_url, "SELECT count(*) FROM pg_stats WHERE schemaname = 'fleet' AND tablename = 'heartbeats'")[0][0] > 0
    health = {t.table: t for t in report.tables}
    assert health["heartbeats"].total_bytes > 0 and health["heartbeats"].oldest_day == policy.utc_today()
    assert report.database_bytes > health["heartbeats"].total_bytes


def test_retention_check_fails_on_overdue_data_and_passes_once_archived(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 50)
    late = {t.table: t.overdue_days for t in retention_overdue(db_url)}
    assert late["heartbeats"] == 45 - 32 + 1 and late["alerts"] == 0
    archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert {t.table: t.overdue_days for t in retention_overdue(db_url)}["heartbeats"] == 0
    # A restored day is held: not overdue while the hold lasts.
    restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    assert {t.table: t.overdue_days for t in retention_overdue(db_url)}["heartbeats"] == 0
    execute(db_url, "UPDATE fleet.retention_holds SET held_until = now() - interval '1 second'")
    assert {t.table: t.overdue_days for t in retention_overdue(db_url)}["heartbeats"] > 0
    assert maintenance.pending_days(db_url, DEFAULTS)["heartbeats"] == [OLD_DAY]


def test_maintenance_vacuums_a_table_whose_dead_tuples_call_for_it(db_url):
    execute(db_url, "INSERT INTO fleet.agents (name) VALUES ('vac')")
    execute(db_url, """INSERT INTO fleet.status_changes (agent_id, from_status, to_status, changed_at)
                       SELECT agent_id, 'up', 'down', now() FROM fleet.agents, generate_series(1, 12000)""")
    execute(db_url, "DELETE FROM fleet.status_changes")
    import time

    deadline = time.monotonic() + 10   # the counters reach pg_stat after the deleting backend reports
    while time.monotonic() < deadline and not execute(
            db_url, "SELECT n_dead_tup >= 10000 FROM pg_stat_user_tables WHERE relname = 'status_changes'")[0][0]:
        time.sleep(0.2)
    report = maintenance.run_maintenance(db_url, DEFAULTS)
    assert "status_changes" in report.vacuumed and "heartbeats" not in report.vacuumed
    assert execute(db_url, "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'status_changes'") == [(0,)]
