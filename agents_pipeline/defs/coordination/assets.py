"""The task queue as an asset in the ``coordination`` group: refreshed by task_queue_sensor
every 5 minutes without starting a run, or materialized here on demand."""

from datetime import timedelta

import dagster as dg

from agents_pipeline.defs.alerts.channels import configured_channels
from agents_pipeline.defs.coordination import queue, report
from agents_pipeline.platform.resources import PostgresResource


def evaluate(postgres: PostgresResource) -> tuple[dict, list[dg.AssetCheckEvaluation]]:
    """One look at the queue: resolves task_dead alerts with nothing left to say, then reports."""
    with postgres.begin() as conn:
        queue.check_alerts(conn, configured_channels())
        state = queue.report(conn)
    return report.metadata(state), report.checks(state)


@dg.asset(
    key=report.ASSET_KEY,
    group_name="coordination",
    kinds={"postgres"},
    owners=["team:agents-platform"],
    description="Tasks handed out by capability (SharedState.submit_task / claim_tasks): per kind, the depth, "
                "the age of the oldest ready task, throughput and failures over 5 minutes (plotted), what is "
                "stuck past its lease and what is dead-lettered.",
    check_specs=[dg.AssetCheckSpec(name, asset=report.ASSET_KEY, description=text)
                 for name, text in report.CHECKS.items()],
    code_version="1",
    # The sensor reports every 5 minutes: 20 without a report means the daemon or the sensor stalled.
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=20), warn_window=timedelta(minutes=11)),
)
def task_queue(postgres: PostgresResource) -> dg.MaterializeResult:
    metadata, evaluations = evaluate(postgres)
    return dg.MaterializeResult(metadata=metadata, check_results=[
        dg.AssetCheckResult(check_name=e.check_name, passed=e.passed, severity=e.severity,
                            description=e.description, metadata=e.metadata) for e in evaluations])
