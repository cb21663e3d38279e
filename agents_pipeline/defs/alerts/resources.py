"""The alert channels as a Dagster resource: settings from dg.EnvVar, so secrets stay out of run config.

Only variables that are set get an EnvVar (an unset EnvVar is an error in Dagster, and most
deployments configure one channel at most); the UI shows the variables' names, never values.
What is delivered with is read from the environment when used (``ChannelSettings.from_env``):
the fields only mirror it, and a value set in run config that differs is refused, so nobody
with Launchpad access can send the SMTP password to their own server or the alerts to their
own address.
"""

from __future__ import annotations

import dataclasses
import os

import dagster as dg
from pydantic import Field

from agents_pipeline.defs.alerts import channels
from agents_pipeline.defs.alerts.channels import ChannelSettings
from agents_pipeline.platform.resources import refuse_override

# resource field -> (environment variable, ChannelSettings attribute)
_FROM_ENV = {
    "webhook_url": (channels.WEBHOOK_URL, "webhook_url"),
    "smtp_host": (channels.SMTP_HOST, "smtp_host"),
    "smtp_port": (channels.SMTP_PORT, "smtp_port"),
    "smtp_user": (channels.SMTP_USER, "smtp_user"),
    "smtp_password": (channels.SMTP_PASSWORD, "smtp_password"),
    "smtp_starttls": (channels.SMTP_STARTTLS, "smtp_starttls"),
    "smtp_tls": (channels.SMTP_TLS, "smtp_tls"),
    "email_from": (channels.EMAIL_FROM, "email_from"),
    "email_to": (channels.EMAIL_TO, "email_to"),
}


class AlertChannelsResource(dg.ConfigurableResource):
    """Where notifications go besides the log: a webhook and/or email over SMTP."""

    webhook_url: str | None = Field(default=None, description="JSON POST target for alerts (may hold a token)")
    smtp_host: str | None = Field(default=None)
    smtp_port: int | None = Field(default=None, description="default 465 implicit TLS, 587 STARTTLS, else 25")
    smtp_user: str | None = Field(default=None)
    smtp_password: str | None = Field(default=None, description="secret: only from an environment variable")
    smtp_starttls: bool = Field(default=False)
    smtp_tls: str | None = Field(default=None, description="implicit, starttls or off")
    email_from: str = Field(default="agents-pipeline@localhost")
    email_to: str | None = Field(default=None, description="comma-separated recipients")
    timeout_s: float = Field(default=5.0, le=5.0, gt=0, description="per delivery, at most 5 s")

    def settings(self) -> ChannelSettings:
        """The environment's channels; ConfigurationError if a field here says otherwise."""
        current = ChannelSettings.from_env()
        for name, (variable, attribute) in _FROM_ENV.items():
            configured = getattr(self, name)
            if name == "email_to" and configured:
                configured = channels.split_addresses(configured)
            elif name == "smtp_tls" and configured:
                configured = configured.strip().lower()
            refuse_override("alert_channels", name, configured, getattr(current, attribute), variable,
                            default=type(self).model_fields[name].default)
        return dataclasses.replace(current, timeout_s=self.timeout_s)


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
        smtp_tls=_env(channels.SMTP_TLS),
        email_from=_env(channels.EMAIL_FROM) or "agents-pipeline@localhost",
        email_to=_env(channels.EMAIL_TO),
    )


@dg.definitions
def resources() -> dg.Definitions:
    """Binds ``alert_channels`` for every sensor and asset that delivers or raises alerts."""
    return dg.Definitions(resources={"alert_channels": alert_channels_resource()})
