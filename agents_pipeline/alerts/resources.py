"""The alert channels as a Dagster resource: settings from dg.EnvVar, so secrets stay out of run config.

Only variables that are set get an EnvVar (an unset EnvVar is an error in Dagster, and most
deployments configure one channel at most); the UI shows the variables' names, never values.
"""

from __future__ import annotations

import os

import dagster as dg
from pydantic import Field

from agents_pipeline.alerts import channels
from agents_pipeline.alerts.channels import ChannelSettings


class AlertChannelsResource(dg.ConfigurableResource):
    """Where notifications go besides the log: a webhook and/or email over SMTP."""

    webhook_url: str | None = Field(default=None, description="JSON POST target for alerts (may hold a token)")
    smtp_host: str | None = Field(default=None)
    smtp_port: int | None = Field(default=None, description="default 587 with STARTTLS, else 25")
    smtp_user: str | None = Field(default=None)
    smtp_password: str | None = Field(default=None, description="secret: only from an environment variable")
    smtp_starttls: bool = Field(default=False)
    email_from: str = Field(default="agents-pipeline@localhost")
    email_to: str | None = Field(default=None, description="comma-separated recipients")
    timeout_s: float = Field(default=5.0, le=5.0, gt=0, description="per delivery, at most 5 s")

    def settings(self) -> ChannelSettings:
        return ChannelSettings(
            webhook_url=self.webhook_url, smtp_host=self.smtp_host, smtp_port=self.smtp_port,
            smtp_user=self.smtp_user, smtp_password=self.smtp_password, smtp_starttls=self.smtp_starttls,
            email_from=self.email_from, email_to=channels.split_addresses(self.email_to),
            timeout_s=self.timeout_s,
        )


def _env(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name) else None


def alert_channels_resource() -> AlertChannelsResource:
    starttls = os.environ.get(channels.SMTP_STARTTLS, "")
    port = os.environ.get(channels.SMTP_PORT, "")
    return AlertChannelsResource(
        webhook_url=_env(channels.WEBHOOK_URL),
        smtp_host=_env(channels.SMTP_HOST),
        smtp_port=dg.EnvVar.int(channels.SMTP_PORT) if port.strip() else None,
        smtp_user=_env(channels.SMTP_USER),
        smtp_password=_env(channels.SMTP_PASSWORD),
        smtp_starttls=starttls.strip().lower() in {"1", "true", "yes", "on"},
        email_from=_env(channels.EMAIL_FROM) or "agents-pipeline@localhost",
        email_to=_env(channels.EMAIL_TO),
    )
