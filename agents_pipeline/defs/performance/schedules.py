"""The hourly rollup job and its schedule (a few minutes past the hour, for late reports)."""

import dagster as dg

from agents_pipeline.defs.performance.assets import performance_rollups

performance_rollup_job = dg.define_asset_job(
    "performance_rollup_job",
    selection=[performance_rollups],
    description="Rolls up one hour of raw performance samples (launch a range from the Launchpad to backfill).",
    tags={"agents_pipeline/job": "performance_rollup_job", "agents_pipeline/kind": "light"},
)

# Five minutes past the hour: remote agents' reports for the hour that just ended have arrived.
performance_rollup_schedule = dg.build_schedule_from_partitioned_job(
    performance_rollup_job,
    name="performance_rollup_schedule",
    minute_of_hour=5,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Rolls up the hour that just ended, five minutes after it ends.",
)
