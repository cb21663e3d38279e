"""Dagster face of retention: one daily-partitioned archive asset per retention class, and the
daily database maintenance asset.

The archive assets' partitions end ``retention`` days back (a negative end_offset), so the
Launchpad's "materialize all" can only ever name days already past retention; the run checks
again per table and refuses a day still inside it. All archive runs share one pool
(ARCHIVAL_POOL) limited to one slot, so a backfill over many days runs one day at a time.
"""

from datetime import date

import dagster as dg

from agents_pipeline.console import Progress
from agents_pipeline.defs.retention import archiver, maintenance, policy
from agents_pipeline.platform.markdown import escape_md
from agents_pipeline.platform.resources import PostgresResource

ARCHIVAL_POOL = "agents_pipeline_archival"
OWNERS = ["team:agents-platform"]


def archive_partitions(retention_class: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(
        start_date=policy.archive_start_date(), timezone="UTC",
        end_offset=-policy.class_min_days(retention_class))


def _md_table(results: list[archiver.DayResult]) -> str:
    lines = ["| table | outcome | rows | bytes | remove ms | notes |", "|---|---|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {escape_md(r.table)} | {escape_md(r.outcome)} | {r.rows} | {r.file_bytes} | "
                     f"{r.remove_ms:.1f} | {escape_md('; '.join(r.notes))} |")
    return "\n".join(lines)


def archive_class_day(context: dg.AssetExecutionContext, postgres: PostgresResource,
                      retention_class: str) -> dg.MaterializeResult:
    day = date.fromisoformat(context.partition_key)
    root, why = policy.archive_root_or_explain(postgres.url)
    if root is None:
        raise dg.Failure(description=why)
    days = policy.retention_days()
    tables = policy.CLASSES[retention_class]
    last = {t: policy.last_archivable_day(days[t]) for t in tables}
    if all(day > last[t] for t in tables):
        raise dg.Failure(description=(
            f"{day} is still inside retention for every table of {retention_class} "
            f"({', '.join(f'{t}: {days[t]} days' for t in tables)}); refused, nothing removed"))
    results = []
    for table in tables:
        if day > last[table]:
            results.append(archiver.DayResult(table, day, "kept", notes=[f"inside {days[table]}-day retention"]))
            continue
        # The same progress a terminal shows, as a log line every 10 s of the run.
        with Progress(f"archive {table} {day}", log=context.log.info) as progress:
            result = archiver.archive_day(postgres.url, root, table, day, days[table], progress=progress)
        context.log.info("%s %s: %s, %d rows", table, day, result.outcome, result.rows)
        results.append(result)
    rows = sum(r.rows for r in results if r.outcome == "archived")
    seconds = sum(r.seconds for r in results)
    return dg.MaterializeResult(metadata={
        "rows_archived": rows,
        "archive_bytes": sum(r.file_bytes for r in results if r.outcome == "archived"),
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else 0.0,
        "max_remove_ms": round(max((r.remove_ms for r in results), default=0.0), 2),
        "archive_folder": dg.MetadataValue.path(str(root)),
        "tables": dg.MetadataValue.md(_md_table(results)),
    })


@dg.asset(
    partitions_def=archive_partitions(policy.RAW), pool=ARCHIVAL_POOL, group_name="retention",
    owners=OWNERS, kinds={"postgres", "parquet"},
    description=("Raw heartbeats and performance samples of one UTC day past retention, moved to "
                 "compressed Parquet (with a manifest of row counts and checksums), verified by reading "
                 "back, then removed by detaching and dropping the day's partition; finished tasks (done "
                 "or failed; dead letters stay) of that day likewise, deleted in small batches."),
)
def raw_telemetry_archive(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    return archive_class_day(context, postgres, policy.RAW)


@dg.asset(
    partitions_def=archive_partitions(policy.HISTORY), pool=ARCHIVAL_POOL, group_name="retention",
    owners=OWNERS, kinds={"postgres", "parquet"},
    description=("Perf rollups, status changes, resolved alerts (with their notifications) and LLM runs "
                 "of one UTC day past retention, moved to Parquet, verified, then deleted in small batches."),
)
def history_archive(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    return archive_class_day(context, postgres, policy.HISTORY)


def maintenance_metadata(report: maintenance.MaintenanceReport) -> dict:
    today = policy.utc_today()
    meta: dict = {
        "database_bytes": report.database_bytes,
        "partitions_created": report.partitions_created,
        "tables_vacuumed": len(report.vacuumed),
        "parents_analyzed": len(report.analyzed),
    }
    lines = ["| table | bytes | dead ratio | oldest day | overdue days |", "|---|---:|---:|---|---:|"]
    for t in report.tables:
        meta[f"{t.table}_bytes"] = t.total_bytes
        meta[f"{t.table}_dead_ratio"] = round(t.dead_ratio, 4)
        meta[f"{t.table}_oldest_day_age_days"] = (today - t.oldest_day).days if t.oldest_day else 0
        lines.append(f"| {escape_md(t.table)} | {t.total_bytes} | {t.dead_ratio:.3f} | {t.oldest_day or '-'} | {t.overdue_days} |")
    meta["tables"] = dg.MetadataValue.md("\n".join(lines))
    return meta


@dg.asset(
    group_name="retention", owners=OWNERS, kinds={"postgres"},
    description=("Daily care of the shared-state database: partitions for the next two weeks, ANALYZE of "
                 "partitioned parents (autovacuum never analyzes them), VACUUM where dead tuples call "
                 "for it; sizes, dead-tuple ratios and the oldest day held per table."),
)
def database_maintenance(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    report = maintenance.run_maintenance(postgres.url, policy.retention_days())
    context.log.info("created %d partitions, analyzed %s, vacuumed %s", report.partitions_created,
                     ", ".join(report.analyzed), ", ".join(report.vacuumed) or "nothing")
    return dg.MaterializeResult(metadata=maintenance_metadata(report))
