"""The ui domain's Dagster face: readiness (asset, checks, sensor) and the launchable platform jobs.

schema_migrate_job selects the platform group's shared_state_schema, so this Definitions is
merged into the root one beside the platform domain.
"""

import dagster as dg

from agents_pipeline.ui.assets import platform_readiness, platform_readiness_sensor
from agents_pipeline.ui.jobs import platform_readiness_job, schema_migrate_job

defs = dg.Definitions(
    assets=[platform_readiness],
    jobs=[schema_migrate_job, platform_readiness_job],
    sensors=[platform_readiness_sensor],
)
