"""The performance domain's Dagster face: samples and rollups, the sampler sensor, the rollup schedule."""

import dagster as dg

from agents_pipeline.performance import assets, schedules, sensors

defs = dg.Definitions(
    assets=[assets.performance_samples, assets.performance_rollups],
    jobs=[schedules.performance_rollup_job],
    schedules=[schedules.performance_rollup_schedule],
    sensors=[sensors.performance_sampler_sensor],
)
