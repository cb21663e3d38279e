"""The privilege audit as a job and a daily schedule: the check on the schema asset,
run once a day on its own (a run costs seconds of CPU; drift is rare but silent)."""

import dagster as dg

from agents_pipeline.defs.security.checks import database_roles_least_privilege

security_audit_job = dg.define_asset_job(
    "security_audit_job",
    selection=dg.AssetSelection.checks(database_roles_least_privilege),
    description="Compares the database roles' privileges with the least-privilege design.",
    tags={"agents_pipeline/job": "security_audit_job", "agents_pipeline/kind": "light"},
)

security_audit_schedule = dg.ScheduleDefinition(
    name="security_audit_schedule",
    job=security_audit_job,
    cron_schedule="17 6 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily privilege audit; the check turns red on any finding.",
)
