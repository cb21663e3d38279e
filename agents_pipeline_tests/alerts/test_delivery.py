"""The outbox sender against real receivers: webhook, SMTP, failures, retries, a dead sender."""

from __future__ import annotations

import email
import logging
import time
from email import policy as email_policy

import pytest
import sqlalchemy as sa

from agents_pipeline.defs.alerts import channels, sender
from agents_pipeline.defs.alerts.channels import ChannelSettings
from agents_pipeline.defs.alerts.sender import SenderPolicy
from agents_pipeline.defs.alerts.store import open_alert, resolve_alert
from agents_pipeline_tests.alerts.servers import self_signed_cert, smtp_server, webhook_receiver
from agents_pipeline_tests.heartbeats.helpers import notifications

FAST = SenderPolicy(lease_s=2, backoff_base_s=0.2, backoff_cap_s=0.5, max_attempts=3, budget_s=10)


@pytest.fixture
def all_channels(monkeypatch):
    monkeypatch.setenv(channels.WEBHOOK_URL, "http://placeholder")
    monkeypatch.setenv(channels.SMTP_HOST, "127.0.0.1")
    monkeypatch.setenv(channels.EMAIL_TO, "ops@example.org")


def raise_alert(engine: sa.Engine, key: str = "agent_down:demo") -> int:
    with engine.begin() as conn:
        alert = open_alert(conn, key=key, kind="agent_down", subject="agent demo is down",
                           message="no heartbeat", details={"reason": "missed"})
    assert alert is not None
    return alert.alert_id


def test_webhook_and_smtp_receive_each_notification_once(engine, all_channels, caplog):
    alert_id = raise_alert(engine)
    with engine.begin() as conn:
        resolve_alert(conn, key="agent_down:demo", message="back")
    with webhook_receiver() as hook, smtp_server(user="alerts", password="pw") as (port, mail):
        # A plain test server: login without TLS allowed on purpose (the TLS paths are tested below).
        settings = ChannelSettings(webhook_url=hook.url, smtp_host="127.0.0.1", smtp_port=port,
                                   smtp_user="alerts", smtp_password="pw", email_to=("ops@example.org",),
                                   smtp_allow_plain_auth=True)
        with caplog.at_level(logging.WARNING, logger="agents_pipeline.defs.alerts"):
            report = sender.send_pending(engine, settings, worker="t", policy=FAST)
            again = sender.send_pending(engine, settings, worker="t", policy=FAST)
    assert (report.claimed, report.delivered, report.failed) == (6, 6, 0)
    assert again.claimed == 0
    assert [(m["event"], m["alert_id"]) for m in hook.received] == [("opened", alert_id), ("resolved", alert_id)]
    assert hook.headers[0]["Idempotency-Key"] == f"alert:{alert_id}:opened"
    assert hook.received[0]["text"] == "WARNING: agent demo is down"
    assert hook.received[1]["text"].startswith("RESOLVED after ")
    assert len(mail.messages) == 2
    sender_addr, rcpts, raw = mail.messages[0]
    msg = email.message_from_bytes(raw, policy=email_policy.default)
    assert rcpts == ["ops@example.org"] and msg["Subject"] == "WARNING: agent demo is down"
    assert msg["X-Idempotency-Key"] == f"alert:{alert_id}:opened"
    assert "no heartbeat" in msg.get_content()
    assert sum("agent demo is down" in r.getMessage() for r in caplog.records) == 2
    assert all(n.delivered_at is not None and n.attempts == 1 for n in notifications(engine))


def test_smtp_login_refused_is_recorded_without_the_password(engine, all_channels):
    raise_alert(engine)
    with smtp_server(user="alerts", password="right") as (port, mail):
        settings = ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_user="alerts",
                                   smtp_password="wrong-secret", email_to=("ops@example.org",),
                                   smtp_allow_plain_auth=True)
        report = sender.send_pending(engine, settings, worker="t", policy=FAST)
    assert mail.messages == []
    (row,) = [n for n in notifications(engine) if n.channel == "email"]
    assert row.delivered_at is None and row.attempts == 1
    assert row.last_error == "SMTP login refused (535)" and "wrong-secret" not in str(report.errors)


def test_smtp_with_starttls_and_login(engine, tmp_path, monkeypatch):
    """STARTTLS with certificate verification (the test CA via SSL_CERT_FILE), then AUTH over TLS."""
    monkeypatch.setenv(channels.SMTP_HOST, "127.0.0.1")
    monkeypatch.setenv(channels.EMAIL_TO, "ops@example.org")
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    alert_id = raise_alert(engine)
    with smtp_server(user="alerts", password="pw", tls=(cert, key)) as (port, mail):
        plain = ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, email_to=("ops@example.org",))
        with pytest.raises(channels.DeliveryError, match="SMTP server answered 530"):
            channels.deliver_email({"subject": "x"}, plain)                  # the server insists on TLS
        settings = ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="starttls",
                                   smtp_user="alerts", smtp_password="pw", email_to=("ops@example.org",))
        report = sender.send_pending(engine, settings, worker="t", policy=FAST)
    assert report.failed == 0 and len(mail.messages) == 1
    msg = email.message_from_bytes(mail.messages[0][2], policy=email_policy.default)
    assert msg["X-Idempotency-Key"] == f"alert:{alert_id}:opened"


def test_channel_failing_then_recovering_is_retried_with_backoff(engine, monkeypatch):
    monkeypatch.setenv(channels.WEBHOOK_URL, "http://placeholder")
    alert_id = raise_alert(engine)
    with webhook_receiver() as hook:
        hook.fail_next = 2
        settings = ChannelSettings(webhook_url=hook.url)
        first = sender.send_pending(engine, settings, worker="t", policy=FAST)
        row = [n for n in notifications(engine) if n.channel == "webhook"][0]
        assert (row.attempts, row.last_error, row.delivered_at) == (1, "webhook answered HTTP 500", None)
        assert "s3cret" not in row.last_error
        assert sender.send_pending(engine, settings, worker="t", policy=FAST).claimed == 0   # backing off
        deadline = time.monotonic() + 10
        while not hook.received and time.monotonic() < deadline:
            time.sleep(0.2)
            sender.send_pending(engine, settings, worker="t", policy=FAST)
    assert first.failed == 1 and hook.attempts == 3
    assert [m["alert_id"] for m in hook.received] == [alert_id]
    row = [n for n in notifications(engine) if n.channel == "webhook"][0]
    assert row.attempts == 3 and row.delivered_at is not None and row.last_error is None


def test_unreachable_webhook_gives_up_after_max_attempts(engine, monkeypatch):
    monkeypatch.setenv(channels.WEBHOOK_URL, "http://placeholder")
    raise_alert(engine)
    settings = ChannelSettings(webhook_url="http://127.0.0.1:9/closed", timeout_s=1)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        sender.send_pending(engine, settings, worker="t", policy=FAST)
        row = [n for n in notifications(engine) if n.channel == "webhook"][0]
        if row.gave_up_at is not None:
            break
        time.sleep(0.2)
    assert row.gave_up_at is not None and row.attempts == 3
    assert row.last_error.startswith("webhook unreachable: ConnectionRefusedError")


def test_sender_killed_between_claim_and_delivery_still_delivers_once(engine, monkeypatch):
    """Regression: a sender that dies holding a lease must not lose the alert nor send it twice."""
    monkeypatch.setenv(channels.WEBHOOK_URL, "http://placeholder")
    alert_id = raise_alert(engine)
    dead = sender.claim(engine, worker="dead", limit=10, lease_s=1.5)        # ...and then it dies
    assert {c.channel for c in dead} == {"log", "webhook"}
    with webhook_receiver() as hook:
        settings = ChannelSettings(webhook_url=hook.url)
        assert sender.send_pending(engine, settings, worker="live", policy=FAST).claimed == 0  # leased
        time.sleep(1.6)
        report = sender.send_pending(engine, settings, worker="live", policy=FAST)
        sender.send_pending(engine, settings, worker="live", policy=FAST)
        late = sender.mark_delivered(engine, [c for c in dead if c.channel == "webhook"][0])
    assert report.delivered == 2
    assert [m["alert_id"] for m in hook.received] == [alert_id]
    assert late is False                                                      # the dead lease is void
    row = [n for n in notifications(engine) if n.channel == "webhook"][0]
    assert row.attempts == 2 and row.delivered_at is not None


def test_two_senders_never_claim_the_same_row(engine, all_channels):
    for i in range(30):
        raise_alert(engine, key=f"agent_down:{i}")
    a = sender.claim(engine, worker="a", limit=50, lease_s=60)
    b = sender.claim(engine, worker="b", limit=50, lease_s=60)
    assert len(a) == 50 and len(b) == 40
    assert not {c.notification_id for c in a} & {c.notification_id for c in b}
