"""The performance assets: raw samples (reported by the sampler sensor) and hourly rollups."""

from datetime import timedelta

import dagster as dg

from agents_pipeline.defs.performance import report
from agents_pipeline.defs.performance.rollups import RollupRefused, rollup_hour
from agents_pipeline.defs.performance.settings import sample_interval_s
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

hourly_partitions = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00", timezone="UTC")


@dg.asset(
    name="performance_rollups",
    partitions_def=hourly_partitions,
    deps=[SAMPLES_KEY],
    group_name=GROUP,
    owners=OWNERS,
    kinds={"postgres", "sql"},
    description=(
        "Hourly min, mean, p50, p95 and max of every metric per agent and for the host, computed in "
        "PostgreSQL from the raw samples (percentile_cont) into fleet.perf_rollups. Re-running an hour "
        "gives the same rows; an hour whose raw samples were archived is refused, never emptied."
    ),
)
def performance_rollups(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    hour = context.partition_time_window.start
    try:
        with postgres.begin() as conn:
            result = rollup_hour(conn, hour)
    except RollupRefused as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    context.log.info("rolled up %s raw samples of %s into %s rows (%s changed, %s removed)",
                     result.raw_samples, hour.isoformat(), len(result.rows), result.changed, result.removed)
    return dg.MaterializeResult(metadata={
        **report.rollup_metadata(result),
        "p95_per_agent": dg.MetadataValue.md(report.rollup_table(result)),
    })
