"""Delivery channels: the log, a webhook (JSON POST) and email over SMTP, configured from the environment.

The log channel is always on; a webhook when AGENTS_PIPELINE_ALERT_WEBHOOK_URL is set; email
when AGENTS_PIPELINE_SMTP_HOST and AGENTS_PIPELINE_ALERT_EMAIL_TO are set. Every delivery has a
timeout of at most 5 s so that one dead receiver cannot stall the sender, and every message
carries the notification's idempotency key (HTTP header, email Message-ID) so a receiver can
drop the duplicates that at-least-once delivery allows. Errors never include the webhook URL
or the SMTP password: both may be secrets.

The webhook is HTTPS unless on loopback and is never redirected (``outbound``): a 3xx is a
failed delivery, retried like any other, since following it would POST the alert, token
and all, to a host nobody configured. SMTP speaks TLS from the first byte (``implicit``, port
465), upgrades with STARTTLS, or neither (``off``); a password is sent only over TLS unless
AGENTS_PIPELINE_SMTP_ALLOW_PLAIN_AUTH says otherwise.
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

from agents_pipeline.platform import outbound

WEBHOOK_URL = "AGENTS_PIPELINE_ALERT_WEBHOOK_URL"
SMTP_HOST = "AGENTS_PIPELINE_SMTP_HOST"
SMTP_PORT = "AGENTS_PIPELINE_SMTP_PORT"
SMTP_USER = "AGENTS_PIPELINE_SMTP_USER"
SMTP_PASSWORD = "AGENTS_PIPELINE_SMTP_PASSWORD"
SMTP_STARTTLS = "AGENTS_PIPELINE_SMTP_STARTTLS"          # older spelling of SMTP_TLS=starttls
SMTP_TLS = "AGENTS_PIPELINE_SMTP_TLS"                    # implicit | starttls | off
SMTP_ALLOW_PLAIN_AUTH = "AGENTS_PIPELINE_SMTP_ALLOW_PLAIN_AUTH"
SMTP_DEFAULT_PORTS = {"implicit": 465, "starttls": 587, "off": 25}
EMAIL_FROM = "AGENTS_PIPELINE_ALERT_EMAIL_FROM"
EMAIL_TO = "AGENTS_PIPELINE_ALERT_EMAIL_TO"
MAX_TIMEOUT_S = 5.0

log = logging.getLogger("agents_pipeline.defs.alerts")


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


def smtp_tls_mode(tls: str | None, starttls: str | None, port: int | None) -> str:
    """implicit, starttls or off: AGENTS_PIPELINE_SMTP_TLS if set, else STARTTLS when the older
    AGENTS_PIPELINE_SMTP_STARTTLS is on, else implicit on port 465 (where SMTPS listens), else off."""
    mode = (tls or "").strip().lower()
    if mode and mode not in SMTP_DEFAULT_PORTS:
        raise ValueError(f"{SMTP_TLS} must be one of implicit, starttls, off; got {tls!r}")
    if mode and (starttls or "").strip() and outbound.flag(starttls) != (mode == "starttls"):
        raise ValueError(f"{SMTP_TLS}={mode} contradicts {SMTP_STARTTLS}={starttls!r}: set only {SMTP_TLS}")
    if mode:
        return mode
    if outbound.flag(starttls):
        return "starttls"
    return "implicit" if port == 465 else "off"


@dataclass(frozen=True)
class ChannelSettings:
    webhook_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_tls: str = "off"
    email_from: str = "agents-pipeline@localhost"
    email_to: tuple[str, ...] = ()
    timeout_s: float = MAX_TIMEOUT_S
    allow_plain_http: bool = False          # AGENTS_PIPELINE_ALLOW_PLAIN_HTTP, for the webhook
    smtp_allow_plain_auth: bool = False     # AGENTS_PIPELINE_SMTP_ALLOW_PLAIN_AUTH

    def __post_init__(self) -> None:
        if self.smtp_tls not in SMTP_DEFAULT_PORTS:
            raise ValueError(f"smtp_tls must be one of implicit, starttls, off; got {self.smtp_tls!r}")

    @property
    def smtp_starttls(self) -> bool:
        return self.smtp_tls == "starttls"

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
            smtp_tls=smtp_tls_mode(os.environ.get(SMTP_TLS), os.environ.get(SMTP_STARTTLS), port_value),
            email_from=os.environ.get(EMAIL_FROM) or "agents-pipeline@localhost",
            email_to=split_addresses(os.environ.get(EMAIL_TO)),
            allow_plain_http=outbound.plain_http_allowed(),
            smtp_allow_plain_auth=outbound.flag(os.environ.get(SMTP_ALLOW_PLAIN_AUTH)),
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
    try:
        outbound.require_secure_url(settings.webhook_url, WEBHOOK_URL, allow_plain_http=settings.allow_plain_http)
    except outbound.InsecureEndpointError as exc:
        raise DeliveryError(f"webhook refused: {exc}") from None
    body = json.dumps({**payload, "text": summary_line(payload)}, default=str).encode()
    request = urllib.request.Request(settings.webhook_url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "agents-pipeline-alerts",
        "Idempotency-Key": str(payload.get("idempotency_key", "")),
    })
    try:
        with outbound.open_without_redirects(request, timeout=min(settings.timeout_s, MAX_TIMEOUT_S)) as response:
            response.read(65536)
    except urllib.error.HTTPError as exc:
        exc.close()
        if outbound.is_redirect(exc.code):
            raise DeliveryError(f"webhook answered HTTP {exc.code} (a redirect): not delivered, redirects are "
                                f"never followed; set {WEBHOOK_URL} to the final URL") from None
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
    if settings.smtp_user and settings.smtp_tls == "off" and not settings.smtp_allow_plain_auth:
        # Decided before connecting: the password must not leave in clear text, not even once.
        raise DeliveryError(f"SMTP login refused: {SMTP_USER} is set but the connection has no TLS, so the "
                            f"password would cross the network unencrypted; set {SMTP_TLS}=implicit or "
                            f"starttls, or {SMTP_ALLOW_PLAIN_AUTH}=1 to allow it")
    port = settings.smtp_port or SMTP_DEFAULT_PORTS[settings.smtp_tls]
    timeout = min(settings.timeout_s, MAX_TIMEOUT_S)
    context = ssl.create_default_context()
    try:
        if settings.smtp_tls == "implicit":
            connection = smtplib.SMTP_SSL(settings.smtp_host, port, timeout=timeout, context=context)
        else:
            connection = smtplib.SMTP(settings.smtp_host, port, timeout=timeout)
        with connection as smtp:
            if settings.smtp_tls == "starttls":
                smtp.starttls(context=context)  # raises if the server does not offer it: no silent downgrade
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
