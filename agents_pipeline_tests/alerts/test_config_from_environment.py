"""Endpoints and secrets come from the environment only: run config (the Launchpad) that differs
is refused, for the alert channels and for the shared-state database."""

from __future__ import annotations

import dagster as dg
import pytest

from agents_pipeline.defs.alerts import channels
from agents_pipeline.defs.alerts.resources import AlertChannelsResource, alert_channels_resource
from agents_pipeline.platform.resources import PostgresResource, postgres_resource

PASSWORD = "smtp-pw-0123456789"


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Every error message the run recorded (step and resource-init failures alike)."""
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:                       # Dagster wraps the resource's own error
            texts.append(error.message)
            error = error.cause or error.context
    return "\n".join(texts)


@dg.op
def channel_settings(alert_channels: AlertChannelsResource) -> str:
    settings = alert_channels.settings()
    return f"{settings.webhook_url} {settings.smtp_host} {','.join(settings.email_to)}"


@dg.job
def channels_job():
    channel_settings()


@pytest.fixture
def alert_env(monkeypatch) -> None:
    for var, value in ((channels.WEBHOOK_URL, "https://hooks.example.org/T0/s3cret"),
                       (channels.SMTP_HOST, "mail.example.org"), (channels.SMTP_USER, "alerts"),
                       (channels.SMTP_PASSWORD, PASSWORD), (channels.SMTP_TLS, "starttls"),
                       (channels.EMAIL_TO, "ops@example.org")):
        monkeypatch.setenv(var, value)


@pytest.mark.parametrize(("override", "variable"), [
    ({"webhook_url": "https://evil.example/collect"}, channels.WEBHOOK_URL),
    ({"smtp_host": "smtp.evil.example"}, channels.SMTP_HOST),
    ({"smtp_port": 2525}, channels.SMTP_PORT),
    ({"smtp_tls": "off"}, channels.SMTP_TLS),
    ({"email_to": "me@evil.example"}, channels.EMAIL_TO),
    ({"smtp_password": {"env": "HOME"}}, channels.SMTP_PASSWORD),
])
def test_run_config_cannot_redirect_the_alert_channels(alert_env, override, variable):
    """Regression: a run could override webhook_url or smtp_host while smtp_password still came
    from {env: ...}, sending the password or the alerts to a server of the caller's choosing."""
    job = dg.Definitions(jobs=[channels_job], resources={"alert_channels": alert_channels_resource()}
                         ).resolve_job_def("channels_job")
    assert job.execute_in_process().output_for_node("channel_settings") == (
        "https://hooks.example.org/T0/s3cret mail.example.org ops@example.org")
    result = job.execute_in_process(run_config={"resources": {"alert_channels": {"config": override}}},
                                    raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    field = next(iter(override))
    assert f"resource 'alert_channels': {field} differs from the environment variable {variable}" in text
    assert PASSWORD not in text and "s3cret" not in text and "evil" not in text


def test_values_equal_to_the_environment_or_left_at_defaults_are_accepted(alert_env):
    resource = AlertChannelsResource(webhook_url="https://hooks.example.org/T0/s3cret", smtp_tls="STARTTLS",
                                     smtp_starttls=True, email_to="ops@example.org", timeout_s=2)
    settings = resource.settings()
    assert (settings.smtp_password, settings.smtp_tls, settings.timeout_s) == (PASSWORD, "starttls", 2)
    # Read when used: a variable changed after the resource was built is what counts.
    assert AlertChannelsResource().settings().smtp_host == "mail.example.org"


@dg.op
def ping(postgres: PostgresResource) -> int:
    with postgres.begin() as conn:
        return conn.exec_driver_sql("SELECT 1").scalar()


@dg.job
def ping_job():
    ping()


def test_run_config_cannot_point_the_database_elsewhere(db_env):
    """Regression: a run-config URL replaced AGENTS_PIPELINE_DATABASE_URL, so a run could write
    the fleet's data to (or take PGPASSWORD to) another server."""
    job = dg.Definitions(jobs=[ping_job], resources={"postgres": postgres_resource()}).resolve_job_def("ping_job")
    assert job.execute_in_process().output_for_node("ping") == 1
    elsewhere = "postgresql+psycopg2://fleet:db-pw-42@127.0.0.2:1/fleet"
    result = job.execute_in_process(run_config={"resources": {"postgres": {"config": {"url": elsewhere}}}},
                                    raise_on_error=False)
    assert not result.success
    text = failure_text(result)
    assert "resource 'postgres': url differs from the environment variable AGENTS_PIPELINE_DATABASE_URL" in text
    assert "db-pw-42" not in text and "127.0.0.2" not in text
