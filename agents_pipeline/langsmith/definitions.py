import dagster as dg

from agents_pipeline.langsmith import assets, checks, jobs, schedules, sensors
from agents_pipeline.langsmith.resources import langsmith_resource

defs = dg.Definitions(
    assets=[assets.llm_conversations, assets.langsmith_runs, assets.langsmith_pushed_conversations,
            assets.llm_usage_daily],
    asset_checks=[checks.langsmith_sync_current],
    jobs=[jobs.langsmith_sync_job, jobs.langsmith_backfill_job],
    schedules=[schedules.langsmith_sync_schedule],
    sensors=[sensors.llm_usage_sensor],
    resources={"langsmith": langsmith_resource()},
)
