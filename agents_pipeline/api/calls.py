"""The agent calls over HTTP: one wrapper that every ``/v1/agents/<name>/...`` call goes through.

Each call is SharedState's own method (core validation, the same ``fleet.*`` function, the same
caps and rate buckets) run for one request by :class:`RemoteAgent`, which passes the bearer
token's SHA-256 as the proof argument instead of a connection setting: the API's login is shared
by every agent, so the proof travels with each call. The database authenticates before any lock
or write; before that, the server only checks the header's shape and reads the body within its
cap. Refusals are one JSON shape, ``{"error": "<one line>"}``, and an unknown agent or a wrong
token get the same 401 (responses.unauthorized), so no answer tells which agents exist.

The calls are blocking psycopg2 calls: they run in Starlette's thread pool on a connection pool
of their own (config.CALL_CONNECTIONS), never on the ping writers' connections.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from agents_pipeline.api import config, responses
from agents_pipeline.api.backend import Backend
from agents_pipeline.api.batches import bearer_agent
from agents_pipeline.api.body import BodyRefused, read_body
from agents_pipeline.api.metrics import count_call
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import (
    AuthError,
    ConflictError,
    DatabaseUnavailableError,
    LeaseLostError,
    NotFoundError,
    RateLimitedError,
    ValidationError,
)
from agents_pipeline.core.shared_state import SharedState

log = logging.getLogger(__name__)
TOKEN_REFUSED = "token refused"          # fleet.authenticate's message for an unknown agent or a wrong token


class RemoteAgent(SharedState):
    """SharedState's agent calls for one request: the API's call pool, the agent named in the
    path, the proof of the request's bearer token. No heartbeat writer (batches go through the
    group-commit writer) and nothing to close: the pool belongs to the backend."""

    def __init__(self, db: Database, agent: str, proof: bytes) -> None:   # no super(): no pool of its own
        self.db = db
        self.agent = agent
        self.proof = proof


Call = Callable[[RemoteAgent, Request, Any], Response]


def json_body(body: bytes) -> Any:
    """The body as JSON (None when empty); a ValidationError names what is wrong."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"body is not JSON: {exc}") from None


def fields(doc: Any, allowed: set[str], *, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The body as an object with only ``allowed`` fields and every ``required`` one."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ValidationError("body must be a JSON object")
    unknown = sorted(set(doc) - allowed)
    if unknown:
        raise ValidationError(f"unknown fields: {', '.join(unknown)}")
    missing = [f for f in required if doc.get(f) is None]
    if missing:
        raise ValidationError(f"missing fields: {', '.join(missing)}")
    return doc


def idempotency_key(request: Request) -> uuid.UUID | None:
    """The Idempotency-Key header, a UUID the client reuses when it retries the same write."""
    raw = request.headers.get("idempotency-key")
    if raw is None:
        return None
    try:
        return uuid.UUID(raw.strip())
    except ValueError:
        raise ValidationError("Idempotency-Key must be a UUID") from None


def integer(value: Any, field: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{field} must be a whole number, got {value!r}")
    return value


def seconds(value: Any, field: str, default: float | None) -> float | None:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{field} must be a number of seconds, got {value!r}")
    return float(value)


def _refusal(exc: Exception) -> Response | None:
    """The answer for an error a call raised on purpose; None for anything else."""
    if isinstance(exc, AuthError):
        if str(exc).startswith(TOKEN_REFUSED):
            return responses.unauthorized()
        return responses.refused(403, str(exc), json=True)
    if isinstance(exc, RateLimitedError):
        return responses.refused(429, str(exc), json=True, retry_after_s=exc.retry_after_s)
    if isinstance(exc, LeaseLostError):
        return responses.refused(409, str(exc), json=True)
    if isinstance(exc, ConflictError):
        return responses.refused(412, str(exc), json=True, extra={"current_version": exc.current_version},
                                 headers={"ETag": f'"{exc.current_version}"'})
    if isinstance(exc, NotFoundError):
        return responses.refused(404, str(exc), json=True)
    if isinstance(exc, ValidationError):
        return responses.refused(400, str(exc), json=True)
    if isinstance(exc, DatabaseUnavailableError):
        return responses.unavailable(json=True, retry_after_s=config.RETRY_AFTER_UNAVAILABLE_S)
    return None


def _run(backend: Backend, call: Call, agent: RemoteAgent, request: Request, doc: Any) -> Response:
    backend.ensure_verified()
    return call(agent, request, doc)


def agent_call(call: Call, *, name: str) -> Callable[[Request], Awaitable[Response]]:
    """The Starlette endpoint for ``call``: the bearer token's shape, the agent's name, the body
    within CALL_BODY_LIMIT as JSON, then the call in a thread; errors answered as refusals."""

    async def endpoint(request: Request) -> Response:
        if (caller := bearer_agent(request)) is None:
            return responses.unauthorized()
        proof, agent = caller
        try:
            body = await read_body(request, config.CALL_BODY_LIMIT, config.BODY_TIMEOUT_S)
            doc = json_body(body)
        except BodyRefused as refusal:
            return responses.refused(refusal.status, refusal.text, json=True)
        except ValidationError as exc:
            return responses.refused(400, str(exc), json=True)
        backend: Backend = request.app.state.backend
        try:
            answer = await run_in_threadpool(_run, backend, call, RemoteAgent(backend.calls, agent, proof),
                                             request, doc)
        except Exception as exc:
            refusal = _refusal(exc)
            if refusal is None:
                raise
            return refusal
        count_call(name)
        return answer

    endpoint.__name__ = name
    return endpoint
