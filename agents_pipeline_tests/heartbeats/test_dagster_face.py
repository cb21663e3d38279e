"""The Dagster face: the health sensor's materialization and check, the asset, the run sensors."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa

from agents_pipeline import definitions as root
from agents_pipeline.definitions import load_domain
from agents_pipeline.defs.alerts.resources import AlertChannelsResource
from agents_pipeline.defs.alerts.sensors import alert_delivery_sensor
from agents_pipeline.defs.heartbeats import report
from agents_pipeline.defs.heartbeats.assets import agent_health
from agents_pipeline.defs.heartbeats.resources import health_settings_resource
from agents_pipeline.defs.heartbeats.sensors import (
    agent_health_sensor,
    job_agent_name,
    run_failure_sensor,
    run_success_sensor,
)
from agents_pipeline.platform.markdown import ZERO_WIDTH_SPACE
from agents_pipeline.platform.pipeline_agents import EVALUATOR_AGENT, SENDER_AGENT
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.alerts.servers import webhook_receiver
from agents_pipeline_tests.heartbeats.helpers import add_agent, agent_row, beat
from agents_pipeline_tests.markdown_oracle import live_markup, table_rows


@pytest.fixture
def postgres(db_env: str) -> PostgresResource:
    return PostgresResource(url=db_env)


def _evaluate_with_sensor(postgres: PostgresResource, instance: dg.DagsterInstance | None = None,
                          channels: AlertChannelsResource | None = None):
    resources = {"postgres": postgres, "alert_channels": channels or AlertChannelsResource(),
                 "health_settings": health_settings_resource()}   # the environment now, as a reload reads it
    with dg.build_sensor_context(instance=instance, resources=resources) as context:
        result = agent_health_sensor(context)
    assert isinstance(result, dg.SensorResult)
    materialization, check = result.asset_events
    return materialization, check


def test_sensor_reports_counts_table_and_a_passing_check(postgres, engine, t0):
    add_agent(engine, "alpha", period_s=60, grace_s=30, created_at=t0 - timedelta(seconds=5))
    beat(engine, "alpha", t0)
    add_agent(engine, "waiting", period_s=600, grace_s=30)
    materialization, check = _evaluate_with_sensor(postgres)
    assert materialization.asset_key == dg.AssetKey("agent_health")
    meta = {k: v.value for k, v in materialization.metadata.items()}
    # the evaluator is an agent too, heartbeated by the evaluation itself
    assert (meta["agents_up"], meta["agents_new"], meta["agents_down"], meta["agents_total"]) == (2, 1, 0, 3)
    assert isinstance(meta["evaluation_ms"], float) and meta["transitions"] == 2
    assert "| waiting | new |" in meta["agents_not_up"]
    assert meta["latest_heartbeat_age_s"] < 60
    assert (check.check_name, check.passed, check.blocking) == (report.CHECK_NAME, True, False)
    assert agent_row(engine, EVALUATOR_AGENT).heartbeat_count == 1
    beat(engine, "alpha", t0 + timedelta(seconds=1))
    materialization, _ = _evaluate_with_sensor(postgres)
    assert materialization.metadata["heartbeats_per_minute"].value > 0


def test_check_warns_on_one_down_and_errors_above_the_share(postgres, engine, t0, monkeypatch):
    old = t0 - timedelta(hours=1)
    for name in ("d1", "d2", "ok1", "ok2", "ok3", "ok4", "ok5"):
        add_agent(engine, name, period_s=60, grace_s=30, created_at=old)
        beat(engine, name, t0 if name.startswith("ok") else old)
    _, check = _evaluate_with_sensor(postgres)
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.WARN)    # 2 of 8 = 25%
    assert check.description == "2 agent(s) down (25% of the fleet): d1, d2"
    monkeypatch.setenv("AGENTS_PIPELINE_HEALTH_ERROR_SHARE", "0.2")
    _, check = _evaluate_with_sensor(postgres)
    assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
    with engine.begin() as conn:                                               # silenced agents pass
        conn.execute(sa.text("UPDATE fleet.agents SET silenced_until = now() + interval '1 hour' "
                             "WHERE name IN ('d1', 'd2')"))
    _, check = _evaluate_with_sensor(postgres)
    assert check.passed


def test_asset_materializes_with_metadata_and_check(postgres, engine, t0):
    add_agent(engine, "gone", period_s=10, grace_s=5, created_at=t0 - timedelta(minutes=5))
    with dg.instance_for_test() as instance:
        result = dg.materialize([agent_health], resources={"postgres": postgres,
                                "health_settings": health_settings_resource()}, instance=instance)
        assert result.success
        (mat,) = result.asset_materializations_for_node("agent_health")
        assert mat.metadata["agents_down"].value == 1
        (check,) = result.get_asset_check_evaluations()
        # 1 of 2 agents (the evaluator is the other) is above the 25% default share
        assert (check.passed, check.severity) == (False, dg.AssetCheckSeverity.ERROR)
        assert "gone" in check.description


def test_down_agent_reaches_the_webhook_in_the_evaluating_tick(postgres, engine, t0, monkeypatch):
    with webhook_receiver() as hook:
        monkeypatch.setenv("AGENTS_PIPELINE_ALERT_WEBHOOK_URL", hook.url)
        add_agent(engine, "lost", period_s=10, grace_s=5, created_at=t0 - timedelta(minutes=5))
        channels = AlertChannelsResource(webhook_url=hook.url)
        resources = {"postgres": postgres, "alert_channels": channels, "health_settings": health_settings_resource()}
        with dg.build_sensor_context(resources=resources) as context:
            result = agent_health_sensor(context)
        # The evaluation queued the alert and the same tick delivered it (log + webhook).
        assert json.loads(result.cursor)["delivered"] == 2
        assert [(m["event"], m["agent"]) for m in hook.received] == [("opened", "lost")]
        with dg.build_sensor_context(resources=resources) as context:
            skip = alert_delivery_sensor(context)          # the backstop finds nothing left
        assert "claimed 0, delivered 0" in skip.skip_message
        assert len(hook.received) == 1
    assert agent_row(engine, SENDER_AGENT).status == "new"                      # registered, heartbeating
    assert agent_row(engine, SENDER_AGENT).heartbeat_count == 1


def test_failed_run_takes_its_job_agent_down_and_the_next_success_resolves_it(postgres, engine):
    attempts = []

    @dg.op
    def explode() -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("disk full")

    @dg.job
    def nightly_job() -> None:
        explode()

    with dg.instance_for_test() as instance:
        result = nightly_job.execute_in_process(instance=instance, raise_on_error=False)
        with dg.build_run_status_sensor_context(
            sensor_name="run_failure_sensor", dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=result.get_run_failure_event(), resources={"postgres": postgres},
        ).for_run_failure() as context:
            run_failure_sensor(context)
    row = agent_row(engine, job_agent_name("nightly_job"))
    assert row.last_kind == "fail" and result.dagster_run.run_id in row.last_message
    materialization, _ = _evaluate_with_sensor(postgres)
    assert agent_row(engine, job_agent_name("nightly_job")).status == "down"
    assert "nightly_job" in materialization.metadata["agents_not_up"].value
    with engine.begin() as conn:
        (alert,) = conn.exec_driver_sql("SELECT subject, message, resolved_at FROM fleet.alerts").all()
    assert alert.subject == f"agent {job_agent_name('nightly_job')} is down" and "disk full" in alert.message
    with dg.instance_for_test() as instance:
        result = nightly_job.execute_in_process(instance=instance)
        with dg.build_run_status_sensor_context(
            sensor_name="run_success_sensor", dagster_instance=instance, dagster_run=result.dagster_run,
            dagster_event=result.get_run_success_event(), resources={"postgres": postgres},
        ) as context:
            run_success_sensor(context)
    _evaluate_with_sensor(postgres)
    assert agent_row(engine, job_agent_name("nightly_job")).status == "up"
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT resolved_at IS NOT NULL FROM fleet.alerts").scalar_one()


def test_definitions_snapshot():
    """Guards the names operators and the lead's root definitions rely on."""
    repo = root.defs.get_repository_def()
    assert {"agent_health_sensor", "alert_delivery_sensor", "run_failure_sensor",
            "run_success_sensor"} <= {s.name for s in repo.sensor_defs}
    spec = root.defs.resolve_asset_graph().get(dg.AssetKey("agent_health"))
    assert spec.group_name == "heartbeats"
    assert repo.get_sensor_def("agent_health_sensor").minimum_interval_seconds <= 15
    assert json.dumps(sorted(load_domain("alerts").resources)) == '["alert_channels"]'


def test_alert_channels_resource_reads_secrets_from_the_environment(monkeypatch):
    """The password reaches the channel settings through dg.EnvVar and never shows in their repr."""
    from agents_pipeline.defs.alerts import channels
    from agents_pipeline.defs.alerts.resources import alert_channels_resource

    for var, value in ((channels.WEBHOOK_URL, "http://127.0.0.1:1/h?token=t0k"), (channels.SMTP_HOST, "mail"),
                       (channels.SMTP_PORT, "2525"), (channels.SMTP_USER, "u"), (channels.SMTP_PASSWORD, "pw-123"),
                       (channels.SMTP_STARTTLS, "true"), (channels.EMAIL_TO, "a@x.org, b@x.org")):
        monkeypatch.setenv(var, value)
    resource = alert_channels_resource()
    with dg.build_resources({"alert_channels": resource}) as built:
        settings = built.alert_channels.settings()
    assert (settings.smtp_port, settings.smtp_password, settings.smtp_starttls) == (2525, "pw-123", True)
    assert settings.email_to == ("a@x.org", "b@x.org") and settings.webhook_url.endswith("token=t0k")
    assert "pw-123" not in repr(settings)
    monkeypatch.delenv(channels.SMTP_PASSWORD)
    monkeypatch.delenv(channels.SMTP_PORT)
    with dg.build_resources({"alert_channels": alert_channels_resource()}) as built:
        assert built.alert_channels.settings().smtp_password is None


def test_agent_text_in_the_health_report_cannot_add_links_or_images(postgres, engine, t0):
    """Regression (issue #16): an agent's name and failure message were pasted into the markdown
    table and the check description as they were, so an agent could show operators a link or
    load an image from any server in their browser."""
    name = "evil [docs](http://evil.example)"
    message = "![x](http://evil.example/t.png) <img src=x> see www.evil.example | forged\n# cell"
    add_agent(engine, name, period_s=60, grace_s=30, created_at=t0 - timedelta(minutes=5))
    beat(engine, name, t0, kind="fail", message=message)
    materialization, check = _evaluate_with_sensor(postgres)
    table = materialization.metadata["agents_not_up"].value
    assert live_markup(table) == [] and live_markup(check.description) == []
    (row,) = [r for r in table_rows(table) if r[0].replace(ZERO_WIDTH_SPACE, "") == name]
    assert row[1] == "down" and row[-1].replace(ZERO_WIDTH_SPACE, "") == " ".join(message.split())
    assert name in check.description.replace("\\", "").replace(ZERO_WIDTH_SPACE, "")
