"""Sensors of the heartbeats domain: the health evaluator, and the pipeline's own runs as agents.

The evaluator is a sensor, not a scheduled job: a run costs about 3 s of CPU to start, while a
tick that runs one SQL function and reports the materialization (``SensorResult.asset_events``)
costs a few milliseconds of SQL. The evaluator delivers the alerts it queued in the same tick
(heartbeats.delivery), so an alert leaves within one evaluation interval without a sensor
ticking every few seconds for it.
"""

import json

import dagster as dg

from agents_pipeline.defs.alerts.resources import AlertChannelsResource
from agents_pipeline.defs.alerts.sensors import deliver_due
from agents_pipeline.defs.heartbeats import boundary, report
from agents_pipeline.defs.heartbeats.health import evaluate_and_log
from agents_pipeline.defs.heartbeats.resources import HealthSettingsResource
from agents_pipeline.platform.pipeline_agents import heartbeat_pipeline_agent
from agents_pipeline.platform.resources import PostgresResource

EVALUATION_INTERVAL_S = 10
# Run-status sensors read the event log every tick; a job's agent is down within 30 s of its run.
RUN_SENSOR_INTERVAL_S = 30
# A job's agent goes down on a failed run (a 'fail' heartbeat) and up on the next success; its
# period is long so that a job that simply has not run raises nothing.
JOB_AGENT_PERIOD_S = 365 * 86400.0
JOB_AGENT_GRACE_S = 86400.0


def job_agent_name(job_name: str) -> str:
    return f"agents-pipeline:job:{job_name}"[:200]


@dg.sensor(
    name="agent_health_sensor",
    minimum_interval_seconds=EVALUATION_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[report.ASSET_KEY],   # agent_health shows this sensor as its automation
    description="Evaluates every agent's health (one SQL function), queues alerts and delivers them, "
                "and reports the agent_health materialization and its check without launching a run.",
)
def agent_health_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource,
                        alert_channels: AlertChannelsResource,
                        health_settings: HealthSettingsResource) -> dg.SensorResult:
    summary, settings = evaluate_and_log(postgres.engine, context.log, health_settings.settings())
    sent = deliver_due(postgres, alert_channels, context.log, budget_s=15.0)
    return dg.SensorResult(
        asset_events=[
            dg.AssetMaterialization(asset_key=report.ASSET_KEY, metadata=report.metadata(summary) | boundary.metadata(summary.boundary)),
            report.check_evaluation(summary, settings.error_share),
        ],
        cursor=json.dumps({"evaluated_at": summary.evaluated_at.isoformat(),
                           "transitions": len(summary.transitions), "delivered": sent.delivered}),
    )


def step_errors(context: dg.RunFailureSensorContext, limit: int = 3) -> str:
    """'step: ExceptionType: message' for the failed steps, from the innermost cause (the user's
    error, not Dagster's wrapper), so the alert says what broke."""
    parts = []
    for event in context.get_step_failure_events()[:limit]:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None and error.cause is not None:
            error = error.cause
        text = error.message.strip().splitlines()[0] if error is not None and error.message.strip() else "failed"
        parts.append(f"{event.step_key}: {text}")
    return "; ".join(parts)


def _job_heartbeat(postgres: PostgresResource, job_name: str, kind: str, message: str | None) -> None:
    with postgres.begin() as conn:
        heartbeat_pipeline_agent(conn, job_agent_name(job_name), period_s=JOB_AGENT_PERIOD_S,
                                 grace_s=JOB_AGENT_GRACE_S, kind=kind, message=message)


@dg.run_failure_sensor(
    name="run_failure_sensor",
    minimum_interval_seconds=RUN_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A failed run of this code location sends a 'fail' heartbeat for its job's agent, "
                "so it is down at once and alerts like any agent (one alert per job until it succeeds), naming the failed steps and their errors.",
)
def run_failure_sensor(context: dg.RunFailureSensorContext, postgres: PostgresResource) -> None:
    run = context.dagster_run
    reason = step_errors(context) or (context.failure_event.message if context.failure_event else None)
    message = f"run {run.run_id} failed" + (f": {reason}" if reason else "")
    _job_heartbeat(postgres, run.job_name, "fail", message[:8000])
    context.log.info("job %s: %s", run.job_name, message)


@dg.run_status_sensor(
    name="run_success_sensor",
    run_status=dg.DagsterRunStatus.SUCCESS,
    minimum_interval_seconds=RUN_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A successful run heartbeats its job's agent: it comes back up and its alert resolves.",
)
def run_success_sensor(context: dg.RunStatusSensorContext, postgres: PostgresResource) -> None:
    run = context.dagster_run
    _job_heartbeat(postgres, run.job_name, "ok", f"run {run.run_id} succeeded")
