"""Delivery channels: the log, a webhook (JSON POST) and email over SMTP, configured from the environment.

The log channel is always on; a webhook when AGENTS_PIPELINE_ALERT_WEBHOOK_URL is set; email
when AGENTS_PIPELINE_SMTP_HOST and AGENTS_PIPELINE_ALERT_EMAIL_TO are set. Every delivery has a
timeout of at most 5 s so that one dead receiver cannot stall the sender, and every message
carries the notification's idempotency key (HTTP header, email Message-ID) so a receiver can
drop the duplicates that at-least-once delivery allows. Errors never include the webhook URL
or the SMTP password: both may be secrets.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

WEBHOOK_URL = "AGENTS_PIPELINE_ALERT_WEBHOOK_URL"
SMTP_HOST = "AGENTS_PIPELINE_SMTP_HOST"
SMTP_PORT = "AGENTS_PIPELINE_SMTP_PORT"
SMTP_USER = "AGENTS_PIPELINE_SMTP_USER"
SMTP_PASSWORD = "AGENTS_PIPELINE_SMTP_PASSWORD"
SMTP_STARTTLS = "AGENTS_PIPELINE_SMTP_STARTTLS"
EMAIL_FROM = "AGENTS_PIPELINE_ALERT_EMAIL_FROM"
EMAIL_TO = "AGENTS_PIPELINE_ALERT_EMAIL_TO"
MAX_TIMEOUT_S = 5.0

log = logging.getLogger("agents_pipeline.alerts")


class DeliveryError(Exception):
    """A channel refused or could not take a message; the sender retries it later."""


def configured_channels() -> list[str]:
    """The channels notifications are queued for, from the environment of the evaluating process."""
    channels = ["log"]
    if os.environ.get(WEBHOOK_URL):
        channels.append("webhook")
    if os.environ.get(SMTP_HOST) and os.environ.get(EMAIL_TO):
        channels.append("email")
    return channels


def _flag(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ChannelSettings:
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_starttls: bool = False
    email_from: str = "agents-pipeline@localhost"
    email_to: tuple[str, ...] = ()
    timeout_s: float = MAX_TIMEOUT_S

    @classmethod
    def from_env(cls) -> ChannelSettings:
        port = os.environ.get(SMTP_PORT)
        try:
            port_value = int(port) if port else None
        except ValueError:
            raise ValueError(f"{SMTP_PORT} must be a port number, got {port!r}") from None
        return cls(
            webhook_url=os.environ.get(WEBHOOK_URL) or None,
            smtp_host=os.environ.get(SMTP_HOST) or None,
            smtp_port=port_value,
            smtp_user=os.environ.get(SMTP_USER) or None,
            smtp_password=os.environ.get(SMTP_PASSWORD) or None,
            smtp_starttls=_flag(os.environ.get(SMTP_STARTTLS)),
            email_from=os.environ.get(EMAIL_FROM) or "agents-pipeline@localhost",
            email_to=split_addresses(os.environ.get(EMAIL_TO)),
        )


def split_addresses(raw: str | None) -> tuple[str, ...]:
    return tuple(a.strip() for a in (raw or "").split(",") if a.strip())


def summary_line(payload: dict[str, Any]) -> str:
    """One line an operator reads first: what happened, to what, and for how long."""
    event = payload.get("event", "alert")
    subject = payload.get("subject") or payload.get("kind") or "alert"
    if event == "resolved":
        secs = payload.get("duration_s")
        took = f" after {format_duration(float(secs))}" if secs is not None else ""
        return f"RESOLVED{took}: {subject}"
    if event == "reminder":
        secs = payload.get("down_for_s")
        took = f" (open for {format_duration(float(secs))})" if secs is not None else ""
        return f"STILL OPEN{took}: {subject}"
    label = "INCIDENT" if event == "incident" else str(payload.get("severity", "alert")).upper()
    return f"{label}: {subject}"


def format_duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{secs:02d}s"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def deliver_log(payload: dict[str, Any], settings: ChannelSettings) -> None:
    log.warning("%s | %s [%s]", summary_line(payload), payload.get("message") or "",
                payload.get("idempotency_key"))


def deliver_webhook(payload: dict[str, Any], settings: ChannelSettings) -> None:
    if not settings.webhook_url:
        raise DeliveryError(f"no webhook configured ({WEBHOOK_URL} is not set)")
    body = json.dumps({**payload, "text": summary_line(payload)}, default=str).encode()
    request = urllib.request.Request(settings.webhook_url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "agents-pipeline-alerts",
        "Idempotency-Key": str(payload.get("idempotency_key", "")),
    })
    try:
        with urllib.request.urlopen(request, timeout=min(settings.timeout_s, MAX_TIMEOUT_S)) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        raise DeliveryError(f"webhook answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DeliveryError(f"webhook unreachable: {type(reason).__name__}: {reason}") from None


def email_message(payload: dict[str, Any], settings: ChannelSettings) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = summary_line(payload)
    msg["From"] = settings.email_from
    msg["To"] = ", ".join(settings.email_to)
    key = str(payload.get("idempotency_key", ""))
    msg["X-Idempotency-Key"] = key
    # The same notification always has the same Message-ID, so mail systems fold duplicates.
    msg["Message-ID"] = make_msgid(idstring=key.replace(":", "."), domain="agents-pipeline")
    lines = [summary_line(payload), ""]
    if payload.get("message"):
        lines += [str(payload["message"]), ""]
    lines += [f"{k}: {v}" for k, v in sorted(payload.items()) if k not in {"message", "details"}]
    if payload.get("details"):
        lines += ["", "details: " + json.dumps(payload["details"], default=str, sort_keys=True)]
    msg.set_content("\n".join(lines))
    return msg


def deliver_email(payload: dict[str, Any], settings: ChannelSettings) -> None:
    if not settings.smtp_host or not settings.email_to:
        raise DeliveryError(f"no email configured ({SMTP_HOST} and {EMAIL_TO} must be set)")
    port = settings.smtp_port or (587 if settings.smtp_starttls else 25)
    timeout = min(settings.timeout_s, MAX_TIMEOUT_S)
    try:
        with smtplib.SMTP(settings.smtp_host, port, timeout=timeout) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_user:
                smtp.login(settings.smtp_user, settings.smtp_password or "")
            smtp.send_message(email_message(payload, settings))
    except smtplib.SMTPAuthenticationError as exc:
        raise DeliveryError(f"SMTP login refused ({exc.smtp_code})") from None
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP server answered {exc.smtp_code}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise DeliveryError(f"SMTP delivery failed: {type(exc).__name__}: {exc}") from None


DELIVERERS = {"log": deliver_log, "webhook": deliver_webhook, "email": deliver_email}


def deliver(channel: str, payload: dict[str, Any], settings: ChannelSettings) -> None:
    """Delivers one message or raises DeliveryError with a reason fit for last_error."""
    try:
        deliverer = DELIVERERS[channel]
    except KeyError:
        raise DeliveryError(f"unknown channel {channel!r}") from None
    deliverer(payload, settings)
