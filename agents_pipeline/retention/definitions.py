"""The retention domain's Dagster face: archive assets, maintenance, the retention check, schedules."""

import dagster as dg

from agents_pipeline.retention import assets, checks, schedules

defs = dg.Definitions(
    assets=[assets.raw_telemetry_archive, assets.history_archive, assets.database_maintenance],
    asset_checks=[checks.retention_enforced],
    jobs=[schedules.raw_telemetry_archive_job, schedules.history_archive_job, schedules.database_maintenance_job],
    schedules=[schedules.raw_telemetry_archive_schedule, schedules.history_archive_schedule,
               schedules.database_maintenance_schedule],
)
