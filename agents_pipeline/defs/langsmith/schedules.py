"""Every 15 minutes, the sync job (pull runs, push conversations)."""

import dagster as dg

from agents_pipeline.defs.langsmith.jobs import langsmith_sync_job

langsmith_sync_schedule = dg.ScheduleDefinition(
    name="langsmith_sync_schedule", job=langsmith_sync_job, cron_schedule="*/15 * * * *",
    execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Pull LangSmith runs and push local conversations every 15 minutes.",
)
