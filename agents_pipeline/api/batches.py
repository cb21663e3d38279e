"""``POST /v1/agents/<name>/heartbeats`` with ``Authorization: Bearer <token>``: a JSON batch.

The body is ``{"heartbeats": [{"kind": "ok", "message": "...", "payload": {...}, "sent_at":
"2025-01-01T00:00:00Z"}, ...]}`` (every field optional, kind defaulting to "ok"). The token never
leaves this process: its SHA-256 (the proof SharedState sends) goes to fleet.record_heartbeats,
which authenticates before any lock and applies the caps and the rate limit per item. Every item
is checked here first, so one request's bad item cannot fail the statement it shares with others.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agents_pipeline.api import config, responses
from agents_pipeline.api.backend import Backend, Beat, Outcome
from agents_pipeline.api.body import BodyRefused, read_body
from agents_pipeline.api.metrics import count_heartbeats, count_refusal
from agents_pipeline.core import validation
from agents_pipeline.core.errors import DatabaseUnavailableError, ValidationError

KINDS = ("ok", "start", "fail", "log")
FIELDS = {"kind", "message", "payload", "sent_at"}


def bearer_proof(request: Request) -> bytes | None:
    """SHA-256 of the bearer token, or None when the header is missing or malformed."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > 512 or not token.isascii():
        return None
    return hashlib.sha256(token.encode("ascii")).digest()


def bearer_agent(request: Request) -> tuple[bytes, str] | None:
    """The bearer token's proof and the path's agent name, or None for a 401: a missing token and
    a name that cannot exist are answered like any unknown agent."""
    proof = bearer_proof(request)
    if proof is None:
        return None
    try:
        return proof, validation.name(request.path_params["name"])
    except ValidationError:
        return None


def parse_item(raw: Any, n: int, agent: str, proof: bytes) -> Beat:
    """One checked item; a ValidationError names the item and the field."""
    if not isinstance(raw, dict):
        raise ValidationError(f"heartbeats[{n}] must be an object")
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise ValidationError(f"heartbeats[{n}] has unknown fields: {', '.join(unknown)}")
    kind = raw.get("kind", "ok")
    if kind not in KINDS:
        raise ValidationError(f"heartbeats[{n}].kind must be one of {', '.join(KINDS)}")
    sent_at = raw.get("sent_at")
    if sent_at is not None:
        try:
            sent_at = datetime.fromisoformat(str(sent_at))
        except ValueError:
            raise ValidationError(f"heartbeats[{n}].sent_at is not an ISO 8601 time") from None
        if sent_at.tzinfo is None:
            raise ValidationError(f"heartbeats[{n}].sent_at has no time zone")
    message = raw.get("message")
    if message is not None and not isinstance(message, str):
        raise ValidationError(f"heartbeats[{n}].message must be a string")
    return Beat(agent, proof, kind, sent_at,
                validation.text(message, f"heartbeats[{n}].message", max_len=config.MESSAGE_CAP),
                validation.document(raw.get("payload"), f"heartbeats[{n}].payload"))


def parse_batch(body: bytes, agent: str, proof: bytes) -> list[Beat]:
    try:
        doc = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"body is not JSON: {exc}") from None
    items = doc.get("heartbeats") if isinstance(doc, dict) else None
    if not isinstance(items, list) or not items:
        raise ValidationError('body must be {"heartbeats": [ ... ]} with at least one item')
    if len(items) > config.MAX_BATCH_ITEMS:
        raise ValidationError(f"a batch holds at most {config.MAX_BATCH_ITEMS} heartbeats, got {len(items)}")
    return [parse_item(raw, n, agent, proof) for n, raw in enumerate(items)]


def _result(outcome: Outcome) -> dict[str, Any]:
    if outcome.error is None:
        return {"received_at": outcome.received_at.isoformat() if outcome.received_at else None}
    result: dict[str, Any] = {"error": outcome.error}
    if outcome.retry_after_s is not None:
        result["retry_after_s"] = round(outcome.retry_after_s, 3)
    return result


async def post_heartbeats(request: Request) -> Response:
    if (caller := bearer_agent(request)) is None:
        return responses.unauthorized()
    proof, agent = caller
    try:
        body = await read_body(request, config.BATCH_BODY_LIMIT, config.BODY_TIMEOUT_S)
        items = parse_batch(body, agent, proof)
    except BodyRefused as refusal:
        return responses.refused(refusal.status, refusal.text, json=True)
    except ValidationError as exc:
        return responses.refused(400, str(exc), json=True)
    backend: Backend = request.app.state.backend
    answers = await asyncio.gather(*backend.beats.submit_async(items), return_exceptions=True)
    failed = [a for a in answers if isinstance(a, BaseException)]
    if any(isinstance(a, DatabaseUnavailableError) for a in failed):
        return responses.unavailable(json=True, retry_after_s=config.RETRY_AFTER_UNAVAILABLE_S)
    if failed:
        raise failed[0]
    outcomes: list[Outcome] = [a for a in answers if isinstance(a, Outcome)]
    if all(o.error is not None and o.error.startswith("token refused") for o in outcomes):
        return responses.unauthorized()
    results = [_result(o) for o in outcomes]
    stored = sum(o.error is None for o in outcomes)
    limited = [o.retry_after_s for o in outcomes if o.error is not None and o.error.startswith("rate limited")]
    if stored == 0 and limited:
        count_refusal(429)
        return JSONResponse({"stored": 0, "results": results}, status_code=429,
                            headers={"Retry-After": responses.retry_after(min(x or 1 for x in limited))})
    count_heartbeats("batch", stored)
    return JSONResponse({"stored": stored, "results": results})
