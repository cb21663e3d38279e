"""The heartbeats domain's Dagster face: the agent_health asset, its sensors, the alert sender."""

import dagster as dg

from agents_pipeline.alerts.resources import alert_channels_resource
from agents_pipeline.heartbeats.assets import agent_health
from agents_pipeline.heartbeats.delivery import alert_delivery_sensor
from agents_pipeline.heartbeats.sensors import agent_health_sensor, run_failure_sensor, run_success_sensor

defs = dg.Definitions(
    assets=[agent_health],
    sensors=[agent_health_sensor, alert_delivery_sensor, run_failure_sensor, run_success_sensor],
    resources={"alert_channels": alert_channels_resource()},
)
