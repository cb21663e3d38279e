"""Readiness in the UI: the ``platform_readiness`` asset, its asset checks, and the sensor
that re-evaluates them every few minutes without starting a run.

A run costs about 3 s of CPU to start; the sensor does the same cheap queries in the daemon
and reports the materialization and the check results as events, so readiness stays current
in the UI for a fraction of that. Materializing the asset from the UI runs the same checks on
demand.
"""

from datetime import timedelta

import dagster as dg

from agents_pipeline.defs.readiness.checklist import Check, database_checks
from agents_pipeline.defs.readiness.instigators import LOCATION_NAME, dagster_checks, summarise
from agents_pipeline.platform.markdown import escape_md
from agents_pipeline.platform.resources import PostgresResource

ASSET_KEY = dg.AssetKey("platform_readiness")
CHECKS = {
    "environment": "Python version, database URL and DAGSTER_HOME are usable.",
    "database": "The shared-state PostgreSQL answers, and is version 15 or later.",
    "schema_version": "The database is at the latest migration in sql/.",
    "heartbeat_path": "A heartbeat sent through the agent API with a token is stored and read back.",
    "agent_boundary": "Agents cannot take advisory locks, have a temp_file_limit, and a session holding "
                      "an agent row can be ended (all need a superuser at migration time).",
    "schedules_and_sensors": "The daemon is alive; every schedule and sensor runs and its latest tick and run did not fail.",
    "read_replica": "The display reads' streaming replica (AGENTS_PIPELINE_READ_DATABASE_URL), when set, answers, is "
                    "a standby and lags by at most AGENTS_PIPELINE_REPLICA_MAX_LAG_S (metric replica_lag_s).",
}


def _repository(context: dg.AssetExecutionContext) -> dg.RepositoryDefinition | None:
    """The run's repository; None when executed in process without one (dg.materialize)."""
    try:
        return context.repository_def
    except dg.DagsterInvariantViolationError:
        return None
    except Exception as exc:  # dagster raises a bare CheckError for "no repository"
        if "Invariant" in str(exc):
            return None
        raise


def evaluate(url: str, instance: dg.DagsterInstance, repo: dg.RepositoryDefinition | None,
             location_name: str) -> tuple[list[Check], dict[str, int], list[Check]]:
    """(the asset-check answers, agents per status, the per-instigator detail)."""
    checks, agents = database_checks(url)
    detail = dagster_checks(instance, repo, location_name)
    return [*checks, summarise(detail)], agents, detail


def _metadata(checks: list[Check], agents: dict[str, int]) -> dict:
    metadata: dict = {
        "checks_passed": sum(c.passed for c in checks),
        "checks_failed": sum(not c.passed for c in checks),
    }
    for check in checks:
        metadata.update({k: v for k, v in check.metadata.items() if isinstance(v, int | float)})
    for status in ("up", "late", "down", "paused", "new"):
        metadata[f"agents_{status}"] = agents.get(status, 0)
    # Details quote error messages (of sensors, of the database): escaped for the markdown table.
    rows = "\n".join(f"| {escape_md(c.name)} | {'pass' if c.passed else '**FAIL**'} | {escape_md(c.detail)} |"
                     for c in checks)
    metadata["report"] = dg.MetadataValue.md("| check | result | detail |\n|---|---|---|\n" + rows)
    return metadata


def _evaluations(checks: list[Check]) -> list[dg.AssetCheckEvaluation]:
    return [
        dg.AssetCheckEvaluation(
            asset_key=ASSET_KEY, check_name=c.name, passed=c.passed, severity=dg.AssetCheckSeverity.ERROR,
            description=escape_md(c.detail, limit=2000),  # rendered as markdown; quotes error messages
            metadata={k: v for k, v in c.metadata.items() if isinstance(v, int | float)},
        )
        for c in checks
        if c.name in CHECKS
    ]


@dg.asset(
    key=ASSET_KEY,
    group_name="platform",
    kinds={"postgres", "dagster"},
    owners=["team:agents-platform"],
    description="Whether this installation can do its job now: environment, database, schema, the heartbeat "
                "path end to end, and the daemon, schedules and sensors. Agents being down is not a failure.",
    check_specs=[dg.AssetCheckSpec(name, asset=ASSET_KEY, description=text) for name, text in CHECKS.items()],
    code_version="1",
    # The sensor refreshes it every 5 minutes: older than 20 means the daemon or the sensor stalled.
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=20), warn_window=timedelta(minutes=11)),
)
def platform_readiness(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    origin = context.run.remote_job_origin
    location = origin.location_name if origin else LOCATION_NAME
    checks, agents, detail = evaluate(postgres.url, context.instance, _repository(context), location)
    for check in [*checks, *detail]:
        (context.log.info if check.passed else context.log.warning)(
            f"{check.name}: {'pass' if check.passed else 'FAIL'}: {check.detail}")
    return dg.MaterializeResult(
        metadata=_metadata(checks, agents),
        check_results=[
            dg.AssetCheckResult(check_name=e.check_name, passed=e.passed, severity=e.severity,
                                description=e.description, metadata=e.metadata)
            for e in _evaluations(checks)
        ],
    )


@dg.sensor(
    name="platform_readiness_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[ASSET_KEY],   # platform_readiness shows this sensor as its automation
    description="Re-evaluates platform readiness every 5 minutes and reports it on platform_readiness "
                "(materialization and asset checks) without starting a run.",
)
def platform_readiness_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    origin = context.code_location_origin
    location = origin.location_name if origin else LOCATION_NAME
    checks, agents, _ = evaluate(postgres.url, context.instance, context.repository_def, location)
    return dg.SensorResult(asset_events=[
        dg.AssetMaterialization(asset_key=ASSET_KEY, metadata=_metadata(checks, agents)),
        *_evaluations(checks),
    ])
