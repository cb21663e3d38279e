"""The privilege audit as a Dagster asset check: passes on the designed roles, fails on drift."""

import dagster as dg

from agents_pipeline.definitions import defs as root_defs
from agents_pipeline.defs.schema.assets import shared_state_schema
from agents_pipeline.defs.security.checks import database_roles_least_privilege
from agents_pipeline.platform.resources import postgres_resource


def _evaluate(url: str, monkeypatch) -> dg.AssetCheckEvaluation:
    """Materializes the schema asset with this check, the database URL from the environment
    (through dg.EnvVar) as in production."""
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", url)
    with dg.instance_for_test() as instance:
        result = dg.materialize([shared_state_schema, database_roles_least_privilege],
                                resources={"postgres": postgres_resource()}, instance=instance)
        evaluations = result.get_asset_check_evaluations()
    return next(e for e in evaluations if e.check_name == "database_roles_least_privilege")


def test_check_passes_on_the_designed_roles(secured_url, monkeypatch):
    evaluation = _evaluate(secured_url, monkeypatch)
    assert evaluation.passed is True
    assert evaluation.metadata["findings"].value == 0


def test_check_fails_and_names_the_drift(secured_url, database, monkeypatch):
    database.transaction(lambda cur: cur.execute("GRANT SELECT ON fleet.llm_conversations TO agents_pipeline_agent"))
    evaluation = _evaluate(secured_url, monkeypatch)
    assert evaluation.passed is False and evaluation.severity == dg.AssetCheckSeverity.ERROR
    assert evaluation.metadata["findings"].value == 1
    assert "fleet.llm_conversations" in evaluation.metadata["details"].value


def test_check_targets_the_schema_asset():
    assert database_roles_least_privilege.check_key.asset_key == dg.AssetKey("shared_state_schema")


def test_the_daily_audit_job_runs_only_the_check(secured_url, monkeypatch):
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", secured_url)
    job = root_defs.resolve_job_def("security_audit_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(instance=instance)
    assert result.success
    assert [e.check_name for e in result.get_asset_check_evaluations()] == ["database_roles_least_privilege"]
    assert result.get_asset_materialization_events() == []
    schedule = root_defs.resolve_schedule_def("security_audit_schedule")
    assert (schedule.cron_schedule, schedule.default_status) == ("17 6 * * *", dg.DefaultScheduleStatus.RUNNING)
