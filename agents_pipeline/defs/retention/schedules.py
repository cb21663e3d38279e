"""Jobs and daily schedules: archive every day past retention, then care for the database.

The archive schedules do not just request yesterday's partition: they ask PostgreSQL (cheap
catalogue and index queries) which days past retention it still holds, so a stopped daemon, a
failed run or a held day whose hold expired is caught up on the next tick. Runs for one class
queue behind each other in the archival pool.
"""

from datetime import date

import dagster as dg

from agents_pipeline.defs.retention import maintenance, policy
from agents_pipeline.defs.retention.assets import database_maintenance, history_archive, raw_telemetry_archive
from agents_pipeline.platform.resources import PostgresResource

MAX_DAYS_PER_TICK = 31

raw_telemetry_archive_job = dg.define_asset_job(
    "raw_telemetry_archive_job", selection=[raw_telemetry_archive],
    description="Archive one UTC day of raw heartbeats and samples past retention.",
    tags={"agents_pipeline/job": "raw_telemetry_archive_job", "agents_pipeline/kind": "bulk"})
history_archive_job = dg.define_asset_job(
    "history_archive_job", selection=[history_archive],
    description="Archive one UTC day of rollups, status changes, alerts and LLM runs past retention.",
    tags={"agents_pipeline/job": "history_archive_job", "agents_pipeline/kind": "bulk"})
database_maintenance_job = dg.define_asset_job(
    "database_maintenance_job", selection=[database_maintenance],
    description="Partitions ahead, ANALYZE, VACUUM, sizes, and the retention check.",
    tags={"agents_pipeline/job": "database_maintenance_job", "agents_pipeline/kind": "bulk"})


def archive_requests(context: dg.ScheduleEvaluationContext, url: str, retention_class: str,
                     partitions: dg.PartitionsDefinition):
    root, why = policy.archive_root_or_explain(url)
    if root is None:
        return dg.SkipReason(why)
    pending = maintenance.pending_days(url, policy.retention_days())
    keys = set(partitions.get_partition_keys(dynamic_partitions_store=None))
    days: set[date] = set()
    for table in policy.CLASSES[retention_class]:
        days.update(pending[table])
    wanted = sorted(d.isoformat() for d in days if d.isoformat() in keys)[:MAX_DAYS_PER_TICK]
    if not wanted:
        return dg.SkipReason(f"no {retention_class} day past retention left in PostgreSQL")
    # One run per day and tick: a failed day is asked for again on the next tick.
    tick = policy.utc_today().isoformat()
    return [dg.RunRequest(run_key=f"{retention_class}:{key}:{tick}", partition_key=key) for key in wanted]


@dg.schedule(job=raw_telemetry_archive_job, cron_schedule="20 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Daily: archive every raw-telemetry day past retention still in PostgreSQL.")
def raw_telemetry_archive_schedule(context: dg.ScheduleEvaluationContext, postgres: PostgresResource):
    return archive_requests(context, postgres.url, policy.RAW, raw_telemetry_archive.partitions_def)


@dg.schedule(job=history_archive_job, cron_schedule="40 2 * * *", execution_timezone="UTC",
             default_status=dg.DefaultScheduleStatus.RUNNING,
             description="Daily: archive every history day past retention still in PostgreSQL.")
def history_archive_schedule(context: dg.ScheduleEvaluationContext, postgres: PostgresResource):
    return archive_requests(context, postgres.url, policy.HISTORY, history_archive.partitions_def)


database_maintenance_schedule = dg.ScheduleDefinition(
    name="database_maintenance_schedule", job=database_maintenance_job, cron_schedule="10 3 * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily after archival: partitions ahead, ANALYZE, VACUUM, sizes, retention check.")
