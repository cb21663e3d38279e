"""``/v1/agents/<name>/metrics``, ``/conversations`` and ``/help-requests``: what an agent on
another host reports, and the help it asks for.

- ``POST .../metrics`` ``{"host": "...", "metrics": {"name": number, ...}, "sampled_at": "..."}``:
  a performance sample taken where the agent runs (``host`` is required: the API's own host
  name would be wrong).
- ``POST .../conversations``: one LLM call, SharedState.record_conversation's fields; its run id
  is deterministic, so a retry stores it once.
- ``POST .../help-requests`` ``{"question": "...", "context": {...}}`` answers 201 with its id and
  a Location to poll with ``GET .../help-requests/<id>`` until its ``answer`` is there (``status`` pending, claimed, answered).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agents_pipeline.api import responses
from agents_pipeline.api.calls import RemoteAgent, fields
from agents_pipeline.core.errors import NotFoundError, ValidationError

CONVERSATION_FIELDS = {"prompt", "response", "model", "conversation_id", "prompt_tokens", "completion_tokens",
                       "cost", "latency_ms", "error", "metadata", "created_at", "run_id"}


def timestamp(value: Any, field: str) -> datetime | None:
    """An ISO 8601 time with a time zone, or None."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationError(f"{field} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValidationError(f"{field} has no time zone")
    return parsed


def report_metrics(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"host", "metrics", "sampled_at"}, required=("host", "metrics"))
    if not isinstance(body["metrics"], dict):
        raise ValidationError("metrics must be an object of name to number")
    stored = agent.report_metrics(body["metrics"], host=body["host"],
                                  sampled_at=timestamp(body.get("sampled_at"), "sampled_at"))
    return responses.json_answer({"stored": stored})


def record_conversation(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, CONVERSATION_FIELDS, required=("prompt",))
    for field in ("prompt_tokens", "completion_tokens"):
        if body.get(field) is not None and (isinstance(body[field], bool) or not isinstance(body[field], int)):
            raise ValidationError(f"{field} must be a whole number")
    for field in ("cost", "latency_ms"):
        if body.get(field) is not None and (isinstance(body[field], bool) or not isinstance(body[field], int | float)):
            raise ValidationError(f"{field} must be a number")
    if body.get("metadata") is not None and not isinstance(body["metadata"], dict):
        raise ValidationError("metadata must be an object")
    try:
        run_id = None if body.get("run_id") is None else uuid.UUID(str(body["run_id"]))
    except ValueError:
        raise ValidationError("run_id must be a UUID") from None
    rid = agent.record_conversation(
        body["prompt"], body.get("response"), model=body.get("model"), conversation_id=body.get("conversation_id"),
        prompt_tokens=body.get("prompt_tokens"), completion_tokens=body.get("completion_tokens"),
        cost=body.get("cost"), latency_ms=body.get("latency_ms"), error=body.get("error"),
        metadata=body.get("metadata"), created_at=timestamp(body.get("created_at"), "created_at"),
        run_id=run_id)
    return responses.json_answer({"run_id": rid}, 201)


def submit_help_request(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"question", "context"}, required=("question",))
    if body.get("context") is not None and not isinstance(body["context"], dict):
        raise ValidationError("context must be an object")
    request_id = agent.submit_help_request(body["question"], body.get("context"))
    location = f"{request.url.path}/{request_id}"
    return responses.json_answer({"request_id": request_id, "status": "pending"}, 201, {"Location": location})


def get_help_request(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    request_id = request.path_params["request_id"]
    found = agent.get_help_request(request_id)
    if found is None:
        raise NotFoundError(f"help request {request_id} not found")
    return responses.json_answer(found)
