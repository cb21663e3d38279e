"""Which delivery channels are configured, from the environment.

The log channel is always on; a webhook when AGENTS_PIPELINE_ALERT_WEBHOOK_URL is set; email
when AGENTS_PIPELINE_SMTP_HOST and AGENTS_PIPELINE_ALERT_EMAIL_TO are set.
"""

from __future__ import annotations

import os

WEBHOOK_URL = "AGENTS_PIPELINE_ALERT_WEBHOOK_URL"
SMTP_HOST = "AGENTS_PIPELINE_SMTP_HOST"
EMAIL_TO = "AGENTS_PIPELINE_ALERT_EMAIL_TO"


def configured_channels() -> list[str]:
    channels = ["log"]
    if os.environ.get(WEBHOOK_URL):
        channels.append("webhook")
    if os.environ.get(SMTP_HOST) and os.environ.get(EMAIL_TO):
        channels.append("email")
    return channels
