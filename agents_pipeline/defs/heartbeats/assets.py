"""The fleet's health as an asset: materialized by the health sensor every ~10 s, or from the UI."""

from datetime import timedelta

import dagster as dg

from agents_pipeline.defs.heartbeats import boundary, report
from agents_pipeline.defs.heartbeats.health import evaluate_and_log
from agents_pipeline.defs.heartbeats.resources import HealthSettingsResource
from agents_pipeline.platform.resources import PostgresResource

# A stalled evaluator shows in the UI: the sensor reports every ~10 s, so a minute without a
# materialization is a warning and two minutes a failure.
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=2), warn_window=timedelta(minutes=1))

HEALTH_CHECK = dg.AssetCheckSpec(
    report.CHECK_NAME, asset=report.ASSET_KEY, blocking=False,
    description="Warning while any unsilenced agent is down; error when more than "
                "AGENTS_PIPELINE_HEALTH_ERROR_SHARE (default 25%) of the fleet is down. Never blocks.",
)


@dg.asset(
    key=report.ASSET_KEY,
    group_name="heartbeats",
    kinds={"postgres"},
    owners=["team:agents-platform"],
    freshness_policy=FRESHNESS,
    check_specs=[HEALTH_CHECK],
    description="Every agent's status (new, up, late, down, paused) judged from its heartbeats: "
                "counts per status over time, the agents not up, and the heartbeat stream. The "
                "agent_health_sensor re-evaluates it every ~10 s without launching a run; "
                "materializing it here runs the same evaluation (and its alerts) once.",
)
def agent_health(context: dg.AssetExecutionContext, postgres: PostgresResource,
                 health_settings: HealthSettingsResource) -> dg.MaterializeResult:
    summary, settings = evaluate_and_log(postgres.engine, context.log, health_settings.settings())
    return dg.MaterializeResult(metadata=report.metadata(summary) | boundary.metadata(summary.boundary),
                                check_results=[report.check_result(summary, settings.error_share)])
