"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

Written as data here rather than generated: Starlette's SchemaGenerator reads YAML out of each
endpoint's docstring (the same text, in a less checked place), and FastAPI's models would cost
their import on every start (api/app.py). A test checks that every route of the app appears here
with its methods, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Any

from agents_pipeline import __version__
from agents_pipeline.api import config

JSON = "application/json"
ERROR = {"$ref": "#/components/schemas/Error"}
AGENT = "/v1/agents/{name}"


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props}


def _answer(description: str, schema: dict[str, Any] | None = None, media: str = JSON) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {media: {"schema": schema}}}


def _refusals(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "bad input: the error names it", 401: "no token, a wrong token or an unknown agent (one answer)",
        403: "authenticated, but not allowed (e.g. a key outside the agent's namespaces)",
        404: "no such item (asked after authentication)", 409: "the task attempt no longer holds its task",
        412: "If-Match names another version: the current one is in the body and the ETag",
        413: "body over the limit", 429: "rate limited: see Retry-After",
        503: "database unavailable: see Retry-After",
    }
    return {str(c): _answer(reasons[c], ERROR) for c in codes}


def _op(summary: str, ok: dict[str, Any], *, codes: tuple[int, ...], body: dict[str, Any] | None = None,
        params: list[dict[str, Any]] | None = None, security: str | None = "agentToken",
        status: str = "200") -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {status: ok, **_refusals(*codes)}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if params:
        op["parameters"] = params
    op["security"] = [{security: []}] if security else []
    return op


def _path_param(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": description}


AGENT_CODES = (400, 401, 413, 429, 503)
KEY = {"name": "key", "in": "query", "required": True, "schema": {"type": "string"},
       "description": "the key, e.g. NAME/last_batch (agents read and write under NAME/ and granted prefixes)"}
IDEMPOTENCY = _header("Idempotency-Key", "a UUID: a retry with the same one writes nothing twice")
ATTEMPT = _obj(attempt_id={"type": "string", "format": "uuid"})


def _ping(signal: bool) -> dict[str, Any]:
    params = [_path_param("key")] + ([_path_param("signal")] if signal else [])
    text = {"type": "string"}
    ok = _answer("stored (committed)", text, "text/plain")
    refused = {"400": _answer("unknown signal", text, "text/plain"),
               "404": _answer("unknown or rotated key (the same answer as no route)", text, "text/plain"),
               "413": _answer(f"body over {config.PING_BODY_LIMIT} bytes", text, "text/plain"),
               "429": _answer("rate limited: see Retry-After", text, "text/plain"),
               "503": _answer("database unavailable: see Retry-After", text, "text/plain")}
    summary = ("a signal: start, fail, log, or an exit status 0-255 (0 success)" if signal
               else "success; the body (if any) becomes the message, cut at the cap")
    op = {"summary": summary, "parameters": params, "security": [],
          "requestBody": {"required": False, "content": {"text/plain": {"schema": text}}},
          "responses": {"200": ok, **refused}}
    return {"get": op, "post": op}


def document() -> dict[str, Any]:
    name = [_path_param("name")]
    task = [*name, _path_param("task_id", "integer")]
    operator_codes = (503,)
    paths: dict[str, Any] = {
        "/healthz": {"get": _op("the process serves (no key, no database)", _answer("ok", _obj(status={"type": "string"})),
                                codes=(), security=None)},
        "/openapi.json": {"get": _op("this document", _answer("OpenAPI 3.1", {"type": "object"}), codes=(),
                                     security=None)},
        "/ping/{key}": _ping(False),
        "/ping/{key}/{signal}": _ping(True),
        f"{AGENT}/heartbeats": {"post": _op(
            "a batch of heartbeats", _answer("per item: received_at or error", _obj(
                stored={"type": "integer"}, results={"type": "array", "items": {"type": "object"}})),
            codes=AGENT_CODES, params=name, body=_obj(heartbeats={"type": "array", "items": _obj(
                kind={"enum": ["ok", "start", "fail", "log"]}, message={"type": "string"},
                payload={"type": "object"}, sent_at={"type": "string", "format": "date-time"})}))},
        f"{AGENT}/metrics": {"post": _op(
            "a performance sample from the agent's host", _answer("stored", _obj(stored={"type": "integer"})),
            codes=AGENT_CODES, params=name, body=_obj(
                host={"type": "string"}, metrics={"type": "object", "additionalProperties": {"type": "number"}},
                sampled_at={"type": "string", "format": "date-time"}))},
        f"{AGENT}/conversations": {"post": _op(
            "one LLM call (idempotent: its run id is deterministic)", _answer("recorded", _obj(
                run_id={"type": "string", "format": "uuid"})), codes=AGENT_CODES, params=name, status="201",
            body=_obj(prompt={"type": "string"}, response={"type": "string"}, model={"type": "string"},
                      conversation_id={"type": "string"}, prompt_tokens={"type": "integer"},
                      completion_tokens={"type": "integer"}, cost={"type": "number"}, latency_ms={"type": "number"},
                      error={"type": "string"}, metadata={"type": "object"},
                      created_at={"type": "string", "format": "date-time"}, run_id={"type": "string", "format": "uuid"}))},
        f"{AGENT}/messages": {"post": _op(
            "send a message (to null: whichever agent claims it first)", _answer("queued", _obj(
                message_id={"type": "integer"})), codes=(*AGENT_CODES, 404), params=[*name, IDEMPOTENCY],
            status="201", body=_obj(to={"type": ["string", "null"]}, type={"type": "string"}, payload={}))},
        f"{AGENT}/messages/claim": {"post": _op(
            "claim messages for a lease", _answer("claimed", _obj(messages={"type": "array", "items": _obj(
                message_id={"type": "integer"}, **{"from": {"type": ["string", "null"]}}, type={"type": "string"},
                payload={}, created_at={"type": "string", "format": "date-time"})})),
            codes=AGENT_CODES, params=name, body=_obj(limit={"type": "integer"}, lease_s={"type": "number"}))},
        f"{AGENT}/messages/{{message_id}}/ack": {"post": _op(
            "acknowledge a claimed message", _answer("acknowledged", _obj(acknowledged={"type": "integer"})),
            codes=(*AGENT_CODES, 404), params=[*name, _path_param("message_id", "integer")])},
        f"{AGENT}/kv": {
            "get": _op("read a key; ETag is its version", _answer("the value", _obj(
                key={"type": "string"}, value={}, version={"type": "integer"}, updated_by={"type": "string"},
                updated_at={"type": "string", "format": "date-time"})), codes=(*AGENT_CODES, 403, 404),
                params=[*name, KEY, _header("If-None-Match", '"<version>": 304 when unchanged')]),
            "put": _op("write a key: a compare-and-set with If-Match, create-only with If-None-Match: *",
                       _answer("stored; ETag is the new version", _obj(key={"type": "string"},
                                                                        version={"type": "integer"})),
                       codes=(*AGENT_CODES, 403, 412), body={"description": "the value: any JSON but null"},
                       params=[*name, KEY, _header("If-Match", '"<version>" expected'),
                               _header("If-None-Match", "*: the key must not exist"), IDEMPOTENCY])},
        f"{AGENT}/help-requests": {"post": _op(
            "ask for help; poll the Location for the answer", _answer("submitted", _obj(
                request_id={"type": "integer"}, status={"type": "string"})), codes=AGENT_CODES, params=name,
            status="201", body=_obj(question={"type": "string"}, context={"type": "object"}))},
        f"{AGENT}/help-requests/{{request_id}}": {"get": _op(
            "a help request and its answer once there", _answer("the request", _obj(
                request_id={"type": "integer"}, status={"type": "string"}, question={"type": "string"},
                answer={"type": ["string", "null"]}, sources={}, answered_at={"type": ["string", "null"]})),
            codes=(*AGENT_CODES, 404), params=[*name, _path_param("request_id", "integer")])},
        f"{AGENT}/tasks": {"post": _op(
            "queue a task (dedupe_key: idempotent per submitter)", _answer("queued", _obj(task_id={"type": "integer"})),
            codes=AGENT_CODES, params=name, status="201", body=_obj(
                kind={"type": "string"}, payload={}, capability={"type": ["string", "null"]},
                priority={"type": "integer"}, run_after={"type": "string", "format": "date-time"},
                max_attempts={"type": "integer"}, dedupe_key={"type": "string"}))},
        f"{AGENT}/tasks/batch": {"post": _op(
            "queue 1 to 1,000 tasks of one kind (all or none)", _answer("queued", _obj(
                task_ids={"type": "array", "items": {"type": "integer"}})), codes=AGENT_CODES, params=name,
            status="201", body=_obj(
                kind={"type": "string"}, payloads={"type": "array"}, capability={"type": ["string", "null"]},
                priority={"type": "integer"}, run_after={"type": "string", "format": "date-time"},
                max_attempts={"type": "integer"},
                dedupe_keys={"type": ["array", "null"], "items": {"type": ["string", "null"]}}))},
        f"{AGENT}/tasks/claim": {"post": _op(
            "claim ready tasks by capability", _answer("claimed (each with its attempt_id)", _obj(
                tasks={"type": "array", "items": {"type": "object"}})), codes=AGENT_CODES, params=name,
            body=_obj(capabilities={"type": ["array", "null"], "items": {"type": "string"}}, n={"type": "integer"},
                      lease_s={"type": "number"}))},
        f"{AGENT}/tasks/{{task_id}}": {"get": _op(
            "a task this agent submitted or holds", _answer("the task", {"type": "object"}),
            codes=(*AGENT_CODES, 404), params=task)},
        f"{AGENT}/tasks/{{task_id}}/complete": {"post": _op(
            "complete the attempt with its result", _answer("done", _obj(state={"type": "string"})),
            codes=(*AGENT_CODES, 409), params=task, body={**ATTEMPT, "properties": {
                **ATTEMPT["properties"], "result": {}}})},
        f"{AGENT}/tasks/{{task_id}}/fail": {"post": _op(
            "fail the attempt (retry later, dead-letter, or permanent)", _answer("the new state", _obj(
                state={"type": "string"})), codes=(*AGENT_CODES, 409), params=task, body={**ATTEMPT, "properties": {
                    **ATTEMPT["properties"], "error": {"type": "string"}, "retry_in": {"type": "number"},
                    "permanent": {"type": "boolean"}}})},
        f"{AGENT}/tasks/{{task_id}}/extend": {"post": _op(
            "renew the attempt's lease", _answer("the new lease end", _obj(lease_until={"type": "string"})),
            codes=(*AGENT_CODES, 409), params=task, body={**ATTEMPT, "properties": {
                **ATTEMPT["properties"], "lease_s": {"type": "number"}}})},
        f"{AGENT}/tasks/{{task_id}}/release": {"post": _op(
            "give a claimed task back unstarted", _answer("ready again", _obj(state={"type": "string"})),
            codes=(*AGENT_CODES, 409), params=task, body=ATTEMPT)},
        "/v1/status": {"get": _op(
            "what `agents-pipeline status --json` shows", _answer("agents", _obj(
                agents={"type": "array", "items": {"type": "object"}}, generated_at={"type": "string"})),
            codes=operator_codes, security="operatorKey")},
        "/v1/alerts": {"get": _op(
            "alerts, open first", _answer("alerts", _obj(alerts={"type": "array", "items": {"type": "object"}},
                                                          generated_at={"type": "string"})),
            codes=(400, *operator_codes), security="operatorKey",
            params=[{"name": "open", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}])},
        "/metrics": {"get": _op(
            "Prometheus text format: the fleet, and this process's counters",
            _answer("exposition", {"type": "string"}, "text/plain"), codes=operator_codes, security="operatorKey")},
    }
    for item in paths.values():      # every operation with a key answers 401 alike
        for op in item.values():
            if op.get("security"):
                op["responses"].setdefault("401", _answer("missing, wrong or revoked credential (one answer)", ERROR))
    return {
        "openapi": "3.1.0",
        "info": {"title": "agents_pipeline agent API", "version": __version__,
                 "description": "Agents report over HTTP with a ping key or their token; operators read with an "
                                "operator API key. See docs/api.md."},
        "paths": paths,
        "components": {
            "schemas": {"Error": _obj(error={"type": "string"})},
            "securitySchemes": {
                "agentToken": {"type": "http", "scheme": "bearer", "description": "the agent's token"},
                "operatorKey": {"type": "http", "scheme": "bearer",
                                "description": "an operator API key (agents-pipeline api-key create NAME)"},
            },
        },
    }
