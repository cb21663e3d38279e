"""The API's answers: refusals, each the same whatever the reason behind it, and JSON bodies.

An unknown ping key and a rotated one get the same 404 as a path that does not exist; an unknown
agent name and a wrong token get the same 401. So no answer tells a caller which agents exist.
Throttling and an unavailable database say when to come back (Retry-After, whole seconds).
Every refusal under /v1 is ``{"error": "<one line>"}`` (plus fields a client acts on, such as a
conflict's ``current_version``); ping refusals are the same line as text, for curl's -f output.
Each refusal is counted by status for GET /metrics (api/metrics.py).
"""

from __future__ import annotations

import json as jsonlib
import math
from datetime import date, datetime
from typing import Any
from uuid import UUID

from starlette.responses import PlainTextResponse, Response

from agents_pipeline.api.metrics import count_refusal

NOT_FOUND_TEXT = "Not Found"          # Starlette's own 404 body, so a refused key reads like no route
UNAUTHORIZED = {"error": "unauthorized: unknown agent or token refused"}
OPERATOR_UNAUTHORIZED = {"error": "unauthorized: operator API key refused"}


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, bytes | memoryview):
        raise TypeError("binary values are never answered")
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_answer(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON body; times as ISO 8601 text."""
    body = jsonlib.dumps(doc, default=_default, ensure_ascii=False, separators=(",", ":"))
    return Response(body.encode("utf-8"), status_code=status, headers=headers, media_type="application/json")


def retry_after(seconds: float | None) -> str:
    """Whole seconds, at least 1 (a client retrying at once would only be refused again)."""
    return str(max(1, math.ceil(seconds or 1)))


def not_found(*, json: bool = False) -> Response:
    count_refusal(404)
    if json:
        return json_answer({"error": "not found"}, 404)
    return PlainTextResponse(NOT_FOUND_TEXT, status_code=404)


def unauthorized(body: dict[str, str] = UNAUTHORIZED) -> Response:
    count_refusal(401)
    return json_answer(body, 401, {"WWW-Authenticate": 'Bearer realm="agents"'})


def refused(status: int, text: str, *, json: bool, retry_after_s: float | None = None,
            extra: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Response:
    """Any other refusal: its reason in one line (as text for pings, as JSON for /v1)."""
    count_refusal(status)
    head = dict(headers or {})
    if retry_after_s is not None:
        head["Retry-After"] = retry_after(retry_after_s)
    if json:
        return json_answer({"error": text, **(extra or {})}, status, head or None)
    return PlainTextResponse(text + "\n", status_code=status, headers=head or None)


def unavailable(*, json: bool, retry_after_s: float) -> Response:
    return refused(503, "database unavailable; retry later", json=json, retry_after_s=retry_after_s)
