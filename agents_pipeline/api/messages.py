"""``/v1/agents/<name>/messages``: send, claim and acknowledge messages between agents.

``POST .../messages`` sends ``{"to": "<agent>" | null, "type": "...", "payload": {...}}``
(``to`` null: whichever agent claims it first); ``Idempotency-Key: <uuid>`` makes a retry queue
nothing and answer the first message's id. ``POST .../messages/claim`` takes ``{"limit": 10,
"lease_s": 60}`` and answers the claimed messages; each is offered again after its lease unless
``POST .../messages/<id>/ack`` acknowledged it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agents_pipeline.api import responses
from agents_pipeline.api.calls import RemoteAgent, fields, idempotency_key, integer, seconds


def send(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"to", "type", "payload"}, required=("type",))
    message_id = agent.send_message(body.get("to"), body["type"], body.get("payload"),
                                    client_id=idempotency_key(request))
    return responses.json_answer({"message_id": message_id}, 201)


def claim(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"limit", "lease_s"})
    claimed = agent.claim_messages(integer(body.get("limit"), "limit", 10),
                                   lease_s=seconds(body.get("lease_s"), "lease_s", 60.0) or 0.0)
    return responses.json_answer({"messages": [
        {"message_id": m.message_id, "from": m.from_agent, "type": m.message_type, "payload": m.payload,
         "created_at": m.created_at} for m in claimed]})


def ack(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    message_id = request.path_params["message_id"]
    agent.ack_message(message_id)
    return responses.json_answer({"acknowledged": message_id})
