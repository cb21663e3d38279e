"""``/ping/<key>[/start|/fail|/log|/<exit status>]``, GET or POST: a heartbeat from one curl.

healthchecks' ping URLs: the key in the path is the credential, the last segment the signal,
the body (if any) the message. The route does no more than the request's shape needs before the
database authenticates the key: a segment that cannot be a key is answered like an unknown key,
without a query; the body is read within its cap. Keys travel to the database as SHA-256 only.
"""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from agents_pipeline.api import config, responses
from agents_pipeline.api.backend import Backend, Ping
from agents_pipeline.api.body import BodyRefused, read_body
from agents_pipeline.api.metrics import count_heartbeats
from agents_pipeline.core.errors import DatabaseUnavailableError
from agents_pipeline.core.ping_keys import KEY_SHAPE, key_hash

log = logging.getLogger(__name__)
_EXIT_STATUS = re.compile(r"[0-9]{1,3}")
SIGNALS = ("start", "fail", "log")


def signal_of(segment: str | None) -> str | None:
    """The signal fleet.record_pings takes for the URL's last segment; None if it names none."""
    if segment is None:
        return ""
    if segment in SIGNALS:
        return segment
    if _EXIT_STATUS.fullmatch(segment) and int(segment) <= 255:
        return str(int(segment))
    return None


def message_of(body: bytes) -> str | None:
    """The body as text for the message: at most the cap's bytes and a little more (so SQL sees it
    was longer and cuts at a character boundary), invalid UTF-8 and NUL (which PostgreSQL text
    cannot hold) replaced by U+FFFD."""
    if not body:
        return None
    return body[: config.MESSAGE_CAP + 4].decode("utf-8", errors="replace").replace("\x00", "\ufffd")


async def ping(request: Request) -> Response:
    key = request.path_params["key"]
    signal = signal_of(request.path_params.get("signal"))
    if signal is None:
        return responses.refused(400, "unknown ping signal: use /start, /fail, /log or an exit status 0-255",
                                 json=False)
    if not KEY_SHAPE.fullmatch(key):
        return responses.not_found()
    try:
        body = await read_body(request, config.PING_BODY_LIMIT, config.BODY_TIMEOUT_S)
    except BodyRefused as refusal:
        return responses.refused(refusal.status, refusal.text, json=False)
    backend: Backend = request.app.state.backend
    item = Ping(key_hash(key), signal, message_of(body), len(body))
    try:
        outcome = await backend.pings.submit_async([item])[0]
    except DatabaseUnavailableError:
        return responses.unavailable(json=False, retry_after_s=config.RETRY_AFTER_UNAVAILABLE_S)
    if outcome.error is None:
        count_heartbeats("ping")
        return PlainTextResponse("OK\n")
    if outcome.error == "ping key refused":
        return responses.not_found()
    if outcome.error.startswith("rate limited"):
        return responses.refused(429, "rate limited: too many pings for this agent", json=False,
                                 retry_after_s=outcome.retry_after_s)
    if outcome.error.startswith("agent busy"):
        return responses.refused(503, "agent busy; retry", json=False, retry_after_s=outcome.retry_after_s)
    return responses.refused(400, outcome.error, json=False)
