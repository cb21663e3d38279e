"""The alert outbox sender (agents_pipeline.defs.alerts) as a Dagster sensor.

The health sensor delivers what its own evaluation queued in the same tick (``deliver_due``),
so an agent's alert leaves within one evaluation interval; this sensor is the backstop for
retries, reminders and alerts raised elsewhere (thresholds, runs), every 30 s. Every sensor
tick costs the daemon, the code server and PostgreSQL about 30 ms of CPU whatever it finds, so
the cadence is part of the monitor's own cost (docs/BENCHMARKS.md). Deliveries time out within
5 s and a tick stops claiming after its budget, well inside the sensor timeout. The sender
heartbeats as an agent, so a stalled sender shows in `agents-pipeline status`.
"""

import os
import socket
from typing import Any

import dagster as dg

from agents_pipeline.defs.alerts.resources import AlertChannelsResource
from agents_pipeline.defs.alerts.sender import SenderPolicy, SendReport, send_pending
from agents_pipeline.platform.pipeline_agents import SENDER_AGENT, heartbeat_pipeline_agent
from agents_pipeline.platform.resources import PostgresResource

SENDER_INTERVAL_S = 30


def deliver_due(postgres: PostgresResource, alert_channels: AlertChannelsResource, log: Any,
                budget_s: float = 20.0) -> SendReport:
    """Claims and delivers every due notification within ``budget_s``; failures are logged."""
    result = send_pending(postgres.engine, alert_channels.settings(), worker=f"{socket.gethostname()}:{os.getpid()}",
                          policy=SenderPolicy(budget_s=budget_s))
    for error in result.errors[:10]:
        log.warning("delivery failed: %s", error)
    return result


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
    result = deliver_due(postgres, alert_channels, context.log)
    return dg.SkipReason(f"claimed {result.claimed}, delivered {result.delivered}, failed {result.failed}, "
                         f"gave up {result.gave_up}")
