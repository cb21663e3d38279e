"""The alert outbox sender (agents_pipeline.alerts) as a Dagster sensor, every few seconds.

A sensor rather than a job: most ticks find nothing and cost one indexed query. Deliveries time
out within 5 s and the tick stops claiming after its budget, well inside the sensor timeout.
The sender heartbeats as an agent, so a stalled sender shows in `agents-pipeline status`.
"""

import os
import socket

import dagster as dg

from agents_pipeline.alerts.resources import AlertChannelsResource
from agents_pipeline.alerts.sender import SenderPolicy, send_pending
from agents_pipeline.heartbeats.pipeline_agents import heartbeat_pipeline_agent
from agents_pipeline.heartbeats.settings import SENDER_AGENT
from agents_pipeline.resources import PostgresResource

SENDER_INTERVAL_S = 5


@dg.sensor(
    name="alert_delivery_sensor",
    minimum_interval_seconds=SENDER_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Claims due alert notifications (FOR UPDATE SKIP LOCKED, with a lease) and delivers "
                "them to the log, the webhook and email; failures are retried with backoff.",
)
def alert_delivery_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource,
                          alert_channels: AlertChannelsResource) -> dg.SkipReason:
    with postgres.begin() as conn:
        heartbeat_pipeline_agent(conn, SENDER_AGENT, period_s=30, grace_s=60)
    result = send_pending(postgres.engine, alert_channels.settings(), worker=f"{socket.gethostname()}:{os.getpid()}",
                          policy=SenderPolicy(budget_s=20))
    for error in result.errors[:10]:
        context.log.warning("delivery failed: %s", error)
    return dg.SkipReason(f"claimed {result.claimed}, delivered {result.delivered}, failed {result.failed}, "
                         f"gave up {result.gave_up}")
