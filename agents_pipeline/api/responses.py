"""The API's answers to refused requests, each the same whatever the reason behind it.

An unknown ping key and a rotated one get the same 404 as a path that does not exist; an unknown
agent name and a wrong token get the same 401. So no answer tells a caller which agents exist.
Throttling and an unavailable database say when to come back (Retry-After, whole seconds).
"""

from __future__ import annotations

import math

from starlette.responses import JSONResponse, PlainTextResponse, Response

NOT_FOUND_TEXT = "Not Found"          # Starlette's own 404 body, so a refused key reads like no route
UNAUTHORIZED = {"error": "unauthorized: unknown agent or token refused"}


def retry_after(seconds: float | None) -> str:
    """Whole seconds, at least 1 (a client retrying at once would only be refused again)."""
    return str(max(1, math.ceil(seconds or 1)))


def not_found() -> Response:
    return PlainTextResponse(NOT_FOUND_TEXT, status_code=404)


def unauthorized() -> Response:
    return JSONResponse(UNAUTHORIZED, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="agents"'})


def refused(status: int, text: str, *, json: bool, retry_after_s: float | None = None) -> Response:
    """Any other refusal: its reason in one line (as text for pings, as JSON for /v1)."""
    headers = {"Retry-After": retry_after(retry_after_s)} if retry_after_s is not None else None
    if json:
        return JSONResponse({"error": text}, status_code=status, headers=headers)
    return PlainTextResponse(text + "\n", status_code=status, headers=headers)


def unavailable(*, json: bool, retry_after_s: float) -> Response:
    return refused(503, "database unavailable; retry later", json=json, retry_after_s=retry_after_s)
