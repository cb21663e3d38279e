"""Outbound hardening of the alert channels against real local receivers: no webhook redirects,
no plain HTTP off loopback, SMTP with implicit TLS, and no SMTP password without TLS."""

from __future__ import annotations

import pytest

from agents_pipeline.defs.alerts import channels, sender
from agents_pipeline.defs.alerts.channels import ChannelSettings, DeliveryError
from agents_pipeline.platform import outbound
from agents_pipeline_tests.alerts.servers import self_signed_cert, smtp_server, webhook_receiver
from agents_pipeline_tests.alerts.test_delivery import FAST, raise_alert
from agents_pipeline_tests.heartbeats.helpers import notifications


def _row(engine, channel: str):
    (row,) = [n for n in notifications(engine) if n.channel == channel]
    return row


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_webhook_redirect_is_a_failed_delivery_and_the_target_gets_nothing(engine, monkeypatch, status):
    """Regression: urllib followed a 301-303 as a GET to the Location, carrying the headers with
    it, and the target's 200 counted as delivered; a redirect is now a failure, retried later."""
    monkeypatch.setenv(channels.WEBHOOK_URL, "http://placeholder")
    raise_alert(engine)
    with webhook_receiver() as target, webhook_receiver() as hook:
        hook.redirect = (status, target.url)
        report = sender.send_pending(engine, ChannelSettings(webhook_url=hook.url), worker="t", policy=FAST)
    row = _row(engine, "webhook")
    assert (report.delivered, report.failed) == (1, 1)                    # the log, and not the webhook
    assert row.delivered_at is None and row.gave_up_at is None and row.attempts == 1
    assert row.last_error.startswith(f"webhook answered HTTP {status} (a redirect): not delivered")
    assert "s3cret" not in row.last_error and "127.0.0.1" not in row.last_error
    assert hook.requests == [("POST", "/hook?token=s3cret")]
    assert target.requests == [] and target.received == []


def test_plain_http_webhook_off_loopback_is_refused_before_any_connection(engine, monkeypatch):
    """Regression: an http:// webhook on another host got the alert and the token in its URL in
    clear text; now the delivery fails at once (no DNS lookup, no connection) and says why."""
    monkeypatch.setenv(channels.WEBHOOK_URL, "http://placeholder")
    monkeypatch.delenv(outbound.ALLOW_PLAIN_HTTP, raising=False)
    raise_alert(engine)
    settings = ChannelSettings(webhook_url="http://ops:pw-123@example.invalid/hook?token=s3cret")
    report = sender.send_pending(engine, settings, worker="t", policy=FAST)
    row = _row(engine, "webhook")
    assert report.failed == 1 and row.delivered_at is None
    assert row.last_error.startswith(
        "webhook refused: AGENTS_PIPELINE_ALERT_WEBHOOK_URL uses plain http:// to 'example.invalid', which is "
        "not loopback")
    assert "AGENTS_PIPELINE_ALLOW_PLAIN_HTTP=1" in row.last_error
    assert "s3cret" not in row.last_error and "pw-123" not in row.last_error
    # The switch is read from the environment; HTTPS and loopback never need it.
    monkeypatch.setenv(outbound.ALLOW_PLAIN_HTTP, "1")
    assert ChannelSettings.from_env().allow_plain_http is True
    assert outbound.require_secure_url(settings.webhook_url, channels.WEBHOOK_URL) == "example.invalid"
    monkeypatch.delenv(outbound.ALLOW_PLAIN_HTTP)
    assert outbound.require_secure_url("https://hooks.example.org/x", channels.WEBHOOK_URL) == "hooks.example.org"
    with pytest.raises(outbound.InsecureEndpointError, match="must be an http"):
        outbound.require_secure_url("file:///etc/passwd", channels.WEBHOOK_URL)


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST.", True), ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("0.0.0.0", False), ("example.invalid", False), ("localhost.example.org", False),
    ("127.0.0.1.nip.io", False), ("::ffff:10.0.0.1", False),
])
def test_only_loopback_hosts_count_as_loopback(host, loopback):
    """A name that merely starts with 127. or localhost must not unlock plain HTTP."""
    assert outbound.is_loopback(host) is loopback


def test_smtp_with_implicit_tls_and_login(engine, tmp_path, monkeypatch):
    """Implicit TLS (SMTPS, port 465) with certificate verification against the test CA; before,
    only STARTTLS or clear text were possible, and an SMTPS-only relay could not be used."""
    monkeypatch.setenv(channels.SMTP_HOST, "127.0.0.1")
    monkeypatch.setenv(channels.EMAIL_TO, "ops@example.org")
    cert, key = self_signed_cert(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    raise_alert(engine)
    with smtp_server(user="alerts", password="pw", implicit_tls=(cert, key)) as (port, mail):
        plain = ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, email_to=("ops@example.org",), timeout_s=1)
        with pytest.raises(DeliveryError):
            channels.deliver_email({"subject": "x"}, plain)                   # the server speaks only TLS
        settings = ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="implicit",
                                   smtp_user="alerts", smtp_password="pw", email_to=("ops@example.org",))
        report = sender.send_pending(engine, settings, worker="t", policy=FAST)
    assert report.failed == 0 and len(mail.messages) == 1 and mail.logins == ["alerts"]
    assert _row(engine, "email").delivered_at is not None


def test_smtp_password_is_never_sent_without_tls(engine, monkeypatch):
    """Regression: with a user set and no TLS, smtplib sent AUTH (the password, base64) in clear
    text; now the delivery fails before connecting, with the reason in the outbox's last_error."""
    monkeypatch.setenv(channels.SMTP_HOST, "127.0.0.1")
    monkeypatch.setenv(channels.EMAIL_TO, "ops@example.org")
    monkeypatch.delenv(channels.SMTP_ALLOW_PLAIN_AUTH, raising=False)
    raise_alert(engine)
    with smtp_server(user="alerts", password="pw-secret") as (port, mail):      # takes AUTH in clear text
        settings = ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_user="alerts",
                                   smtp_password="pw-secret", email_to=("ops@example.org",))
        report = sender.send_pending(engine, settings, worker="t", policy=FAST)
        assert mail.logins == [] and mail.messages == []
        row = _row(engine, "email")
        assert report.failed == 1 and row.delivered_at is None
        assert row.last_error.startswith("SMTP login refused: AGENTS_PIPELINE_SMTP_USER is set but the "
                                         "connection has no TLS")
        assert "AGENTS_PIPELINE_SMTP_ALLOW_PLAIN_AUTH=1" in row.last_error and "pw-secret" not in row.last_error
        # Allowed on purpose, through the environment: the same server now gets the login.
        for var, value in ((channels.SMTP_PORT, str(port)), (channels.SMTP_USER, "alerts"),
                           (channels.SMTP_PASSWORD, "pw-secret"), (channels.SMTP_ALLOW_PLAIN_AUTH, "1")):
            monkeypatch.setenv(var, value)
        channels.deliver_email({"subject": "x", "idempotency_key": "k"}, ChannelSettings.from_env())
    assert mail.logins == ["alerts"] and len(mail.messages) == 1


def test_starttls_not_offered_fails_instead_of_falling_back_to_clear_text():
    """A server (or a man in the middle) that hides STARTTLS must not get the login in clear text."""
    with smtp_server(user="alerts", password="pw") as (port, mail):
        settings = ChannelSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_tls="starttls",
                                   smtp_user="alerts", smtp_password="pw", email_to=("ops@example.org",))
        with pytest.raises(DeliveryError, match="STARTTLS extension not supported"):
            channels.deliver_email({"subject": "x"}, settings)
    assert mail.logins == [] and mail.messages == []


@pytest.mark.parametrize(("tls", "starttls", "port", "mode"), [
    (None, None, None, "off"), (None, None, 465, "implicit"), (None, "true", None, "starttls"),
    (None, "1", 465, "starttls"), ("implicit", None, 2465, "implicit"), (" STARTTLS ", "yes", None, "starttls"),
    ("off", "", 465, "off"),
])
def test_smtp_tls_mode_from_the_environment(tls, starttls, port, mode):
    assert channels.smtp_tls_mode(tls, starttls, port) == mode


def test_contradicting_or_unknown_smtp_tls_settings_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="AGENTS_PIPELINE_SMTP_TLS=off contradicts AGENTS_PIPELINE_SMTP_STARTTLS"):
        channels.smtp_tls_mode("off", "1", None)
    with pytest.raises(ValueError, match="one of implicit, starttls, off"):
        channels.smtp_tls_mode("ssl", None, None)
    monkeypatch.setenv(channels.SMTP_PORT, "465")
    monkeypatch.delenv(channels.SMTP_TLS, raising=False)
    monkeypatch.delenv(channels.SMTP_STARTTLS, raising=False)
    assert ChannelSettings.from_env().smtp_tls == "implicit"
