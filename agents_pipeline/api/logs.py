"""Logging without secrets: ping keys, bearer tokens and operator keys never reach a log line.

uvicorn's access log prints each request's path, and a ping path holds the agent's key; error
lines can hold whatever a failing call put in its message. One filter, on every handler of the
server's log configuration, rewrites a record's message and arguments before any formatting:
``/ping/<key>`` becomes ``/ping/***``, a path's query string becomes ``?***`` (a key-value
key is one, and a client may put anything there), ``Bearer <token>`` becomes ``Bearer ***``, and
an agent token (``apt_...``) or an operator API key (``apk_...``) becomes ``apt_***`` or
``apk_***``. The reverse proxy's log needs the same rule (docs/DEPLOY.md).
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any

_PING_PATH = re.compile(r"(/ping/)[^/?#\s\"]+")
_QUERY = re.compile(r"((?:^|[\s\"])/[^?\s\"]*\?)[^\s\"]*")
_BEARER = re.compile(r"(?i)(bearer\s+)\S+")
_TOKEN = re.compile(r"\b(ap[tk])_[A-Za-z0-9_-]+")


def redact(text: str) -> str:
    """``text`` with ping keys, bearer credentials, agent tokens and operator keys replaced by ***."""
    # Substring checks first: each access-log line passes here, and most hold none of these.
    if "/ping/" in text:
        text = _PING_PATH.sub(r"\1***", text)
    if "?" in text:
        text = _QUERY.sub(r"\1***", text)
    if "bearer" in text.lower():
        text = _BEARER.sub(r"\1***", text)
    if "apt_" in text or "apk_" in text:
        text = _TOKEN.sub(r"\1_***", text)
    return text


class RedactSecrets(logging.Filter):
    """Rewrites the record in place (message and string arguments); never drops it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if record.exc_info and record.exc_info[1] is not None:
            # A traceback's last line is the exception's text: log it redacted, without the frames.
            record.msg = f"{record.msg}: {redact(str(record.exc_info[1]))} ({type(record.exc_info[1]).__name__})"
            record.exc_info = None
            record.exc_text = None
        return True


def log_config(access_log: bool = True) -> dict[str, Any]:
    """uvicorn's own configuration with the redacting filter on both of its handlers, and this
    package's logger writing beside uvicorn's errors."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact": {"()": RedactSecrets}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact"]
    config["loggers"]["agents_pipeline"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    if not access_log:
        config["loggers"]["uvicorn.access"]["level"] = "WARNING"
    return config
