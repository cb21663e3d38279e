"""The performance assets: raw samples (reported by the sampler sensor) and hourly rollups."""

from datetime import datetime, timedelta

import dagster as dg

from agents_pipeline.defs.performance import report
from agents_pipeline.defs.performance.rollups import RollupRefused, RollupResult, rollup_hour
from agents_pipeline.defs.performance.settings import sample_interval_s
from agents_pipeline.platform.history_start import history_start
from agents_pipeline.platform.resources import PostgresResource

GROUP = "performance"
OWNERS = ["team:agents-platform"]
SAMPLES_KEY = dg.AssetKey("performance_samples")

# Materialized by performance_sampler_sensor through SensorResult(asset_events=...): one
# sample a minute as a run would cost ~3 s of CPU each (about 5 % of a core).
performance_samples = dg.AssetSpec(
    SAMPLES_KEY,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"python", "postgres"},
    description=(
        "Raw performance samples in fleet.perf_samples (long format): the host's CPU overall and per "
        "core, load, memory, swap, disk use per filesystem, disk and network rates; per local agent its "
        "process(es) found by pid, pidfile or pattern, CPU %, RSS, threads, fds, I/O and context "
        "switches. Written by performance_sampler_sensor; agents on other hosts report through "
        "SharedState.report_metrics."
    ),
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(seconds=max(600, 5 * sample_interval_s())),
        warn_window=timedelta(seconds=max(180, 2 * sample_interval_s())),
    ),
)

hourly_partitions = dg.HourlyPartitionsDefinition(start_date=f"{history_start():%Y-%m-%d}-00:00", timezone="UTC")
# A week of hours per run: a month's backfill is five runs, not 720 (each run costs ~3 s of CPU
# to start, an hour's rollup a few milliseconds of SQL).
HOURS_PER_RUN = 168


@dg.asset(
    name="performance_rollups",
    partitions_def=hourly_partitions,
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=HOURS_PER_RUN),
    # The schedule runs at :05; an hour not rolled up by :30 of the next is late.
    freshness_policy=dg.FreshnessPolicy.cron(deadline_cron="30 * * * *", lower_bound_delta=timedelta(minutes=30)),
    deps=[SAMPLES_KEY],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"postgres", "sql"},
    metadata={"dagster/column_schema": report.ROLLUP_COLUMNS, "dagster/table_name": "fleet.perf_rollups"},
    description=(
        "Hourly min, mean, p50, p95 and max of every metric per agent and for the host, computed in "
        "PostgreSQL from the raw samples (percentile_cont) into fleet.perf_rollups. Re-running an hour "
        "gives the same rows; an hour whose raw samples were archived is refused, never emptied. "
        f"A backfill runs up to {HOURS_PER_RUN} hours per run. Plots: the host's p95s and the agents' "
        "spread; per agent, the top-10 tables here and each agent's page (agent_story)."
    ),
)
def performance_rollups(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    window = context.partition_time_window
    hours = []
    at = window.start
    while at < window.end:
        hours.append(at)
        at += timedelta(hours=1)
    results, refused = roll_up_hours(context, postgres, hours)
    if len(hours) == 1 and refused:
        raise dg.Failure(description=refused[0], allow_retries=False)
    if not results:
        raise dg.Failure(description=f"all {len(hours)} hours refused; first: {refused[0]}", allow_retries=False)
    metadata = {**report.rollup_metadata(results), **report.rollup_top_tables(results)}
    if refused:
        metadata["hours_refused"] = len(refused)
        metadata["refused"] = dg.MetadataValue.text("\n".join(refused[:20]))
    return dg.MaterializeResult(metadata=metadata)


def roll_up_hours(context: dg.AssetExecutionContext, postgres: PostgresResource,
                  hours: list[datetime]) -> tuple[list[RollupResult], list[str]]:
    """Each hour in its own transaction, so one refused hour (archived, never sampled) in a
    backfill range neither rolls back nor blocks the others; the refusals are reported."""
    results: list[RollupResult] = []
    refused: list[str] = []
    for hour in hours:
        try:
            with postgres.begin() as conn:
                result = rollup_hour(conn, hour)
        except RollupRefused as exc:
            refused.append(str(exc))
            continue
        results.append(result)
        context.log.info("rolled up %s raw samples of %s into %s rows (%s changed, %s removed)",
                         result.raw_samples, hour.isoformat(), len(result.rows), result.changed, result.removed)
    return results, refused
