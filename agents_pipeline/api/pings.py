"""``/ping/<key>[/start|/fail|/log|/<exit status>]``, GET or POST: a heartbeat from one curl.

healthchecks' ping URLs: the key in the path is the credential, the last segment the signal,
the body (if any) the message. The route does no more than the request's shape needs before the
database authenticates the key: a segment that cannot be a key is answered like an unknown key,
without a query; the body is read within its cap. Keys travel to the database as SHA-256 only.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from starlette.applications import Starlette
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
# One answer object for every stored ping: a Response keeps no state between sends, and building
# its headers once saves that work on the commonest answer.
OK = PlainTextResponse("OK\n")


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
    """The Starlette route: pings with a body, and whatever PingFastPath passes on."""
    segment = request.path_params.get("signal")
    if signal_of(segment) is None or not KEY_SHAPE.fullmatch(request.path_params["key"]):
        return await answer(request.app.state.backend, request.path_params["key"], segment, b"")
    try:
        body = await read_body(request, config.PING_BODY_LIMIT, config.BODY_TIMEOUT_S)
    except BodyRefused as refusal:
        return responses.refused(refusal.status, refusal.text, json=False)
    return await answer(request.app.state.backend, request.path_params["key"], segment, body)


async def answer(backend: Backend, key: str, segment: str | None, body: bytes) -> Response:
    """One ping's answer, once its body is read: the signal and the key's shape checked, then the
    ping committed through the group-commit writer."""
    signal = signal_of(segment)
    if signal is None:
        return responses.refused(400, "unknown ping signal: use /start, /fail, /log or an exit status 0-255",
                                 json=False)
    if not KEY_SHAPE.fullmatch(key):
        return responses.not_found()
    item = Ping(key_hash(key), signal, message_of(body), len(body))
    try:
        outcome = await backend.pings.submit_async([item])[0]
    except DatabaseUnavailableError:
        return responses.unavailable(json=False, retry_after_s=config.RETRY_AFTER_UNAVAILABLE_S)
    if outcome.error is None:
        count_heartbeats("ping")
        return OK
    if outcome.error == "ping key refused":
        return responses.not_found()
    if outcome.error.startswith("rate limited"):
        return responses.refused(429, "rate limited: too many pings for this agent", json=False,
                                 retry_after_s=outcome.retry_after_s)
    if outcome.error.startswith("agent busy"):
        return responses.refused(503, "agent busy; retry", json=False, retry_after_s=outcome.retry_after_s)
    return responses.refused(400, outcome.error, json=False)


class PingFastPath:
    """ASGI in front of the Starlette app for the commonest request, a ping without a body
    (``GET /ping/<key>[/<signal>]``, what curl and cron send): answered by :func:`answer` without
    Starlette's middleware stack, router and Request, which cost about half of such a ping's CPU
    in one process (docs/BENCHMARKS.md). Anything else (a body, HEAD, an empty or extra segment)
    goes to the app unchanged, so both give the same answers; an unexpected error is logged
    redacted and answered 500 as the app's handler does."""

    def __init__(self, app: Starlette, on_error: Callable[[Exception], Response]) -> None:
        self.app = app
        self.on_error = on_error

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path: str = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith("/ping/") and scope["method"] == "GET":
            parts = path[6:].split("/")
            if 0 < len(parts) <= 2 and all(parts) and not _has_body(scope["headers"]):
                try:
                    response = await answer(self.app.state.backend, parts[0], parts[1] if len(parts) == 2 else None,
                                            b"")
                except Exception as exc:
                    response = self.on_error(exc)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _has_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if (name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding":
            return True
    return False
