"""``/v1/agents/<name>/tasks``: the task queue over HTTP (core/tasks.py's calls, docs/tasks.md).

- ``POST .../tasks`` ``{"kind", "payload", "capability", "priority", "run_after", "max_attempts",
  "dedupe_key"}`` queues a task (201 with its id; the same dedupe key answers the first id).
- ``POST .../tasks/batch`` ``{"kind", "payloads": [...], ..., "dedupe_keys": [...]}`` queues 1 to
  1,000 tasks of one kind at once (201 with their ids, in the payloads' order; all or none).
- ``POST .../tasks/claim`` ``{"capabilities": [...] | null, "n": 1, "lease_s": 60}`` claims up to
  n tasks; each carries its ``attempt_id``.
- ``POST .../tasks/<id>/complete`` ``{"attempt_id", "result"}``, ``/fail`` ``{"attempt_id",
  "error", "retry_in", "permanent"}``, ``/extend`` ``{"attempt_id", "lease_s"}`` and ``/release``
  ``{"attempt_id"}`` present the attempt: one that lost its task gets 409.
- ``GET .../tasks/<id>``: a task this agent submitted or holds (404 for any other, as for none).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agents_pipeline.api import responses
from agents_pipeline.api.calls import RemoteAgent, fields, integer, seconds
from agents_pipeline.api.reports import timestamp
from agents_pipeline.core.errors import LeaseLostError, NotFoundError, ValidationError
from agents_pipeline.core.tasks import Task

SUBMIT_FIELDS = {"kind", "payload", "capability", "priority", "run_after", "max_attempts", "dedupe_key"}


def submit(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, SUBMIT_FIELDS, required=("kind",))
    task_id = agent.submit_task(body["kind"], body.get("payload"), capability=body.get("capability"),
                                priority=integer(body.get("priority"), "priority", 0),
                                run_after=timestamp(body.get("run_after"), "run_after"),
                                max_attempts=integer(body.get("max_attempts"), "max_attempts", 5),
                                dedupe_key=body.get("dedupe_key"))
    return responses.json_answer({"task_id": task_id}, 201, {"Location": f"{request.url.path}/{task_id}"})


def submit_batch(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, SUBMIT_FIELDS - {"payload", "dedupe_key"} | {"payloads", "dedupe_keys"},
                  required=("kind", "payloads"))
    payloads, keys = body["payloads"], body.get("dedupe_keys")
    if not isinstance(payloads, list) or (keys is not None and not isinstance(keys, list)):
        raise ValidationError("payloads must be a list, and dedupe_keys a list or null")
    task_ids = agent.submit_tasks(body["kind"], payloads, capability=body.get("capability"),
                                  priority=integer(body.get("priority"), "priority", 0),
                                  run_after=timestamp(body.get("run_after"), "run_after"),
                                  max_attempts=integer(body.get("max_attempts"), "max_attempts", 5),
                                  dedupe_keys=keys)
    return responses.json_answer({"task_ids": task_ids}, 201)


def claim(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"capabilities", "n", "lease_s"})
    caps = body.get("capabilities")
    if caps is not None and not isinstance(caps, list):
        raise ValidationError("capabilities must be a list of names, or null for every granted one")
    tasks = agent.claim_tasks(caps, integer(body.get("n"), "n", 1), seconds(body.get("lease_s"), "lease_s", 60.0))
    return responses.json_answer({"tasks": [{k: v for k, v in asdict(t).items() if k != "agent"} for t in tasks]})


def held(agent: RemoteAgent, request: Request, body: dict[str, Any]) -> Task:
    """The attempt the body presents, as core's calls take it (they read its id, attempt id, agent)."""
    try:
        attempt_id = str(uuid.UUID(str(body["attempt_id"])))
    except ValueError:
        raise ValidationError("attempt_id must be the UUID the claim answered") from None
    return Task(request.path_params["task_id"], attempt_id, "", None, 0, None, 0, 0, None, None, None,  # type: ignore[arg-type]
                agent=agent.agent or "")


def _lost(task: Task) -> LeaseLostError:
    return LeaseLostError(f"task {task.task_id} attempt {task.attempt_id} is no longer held by this agent: its lease "
                          "ran out and it was claimed again, or the agent was marked down")


def complete(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"attempt_id", "result"}, required=("attempt_id",))
    task = held(agent, request, body)
    try:
        agent.complete(task, body.get("result"))
    except LeaseLostError:
        raise _lost(task) from None
    return responses.json_answer({"task_id": task.task_id, "state": "done"})


def fail(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"attempt_id", "error", "retry_in", "permanent"}, required=("attempt_id",))
    task = held(agent, request, body)
    permanent = body.get("permanent", False)
    if not isinstance(permanent, bool):
        raise ValidationError("permanent must be true or false")
    error = body.get("error")
    if error is not None and not isinstance(error, str):
        raise ValidationError("error must be text")
    try:
        state = agent.fail_task(task, error, seconds(body.get("retry_in"), "retry_in", None), permanent=permanent)
    except LeaseLostError:
        raise _lost(task) from None
    return responses.json_answer({"task_id": task.task_id, "state": state})


def extend(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"attempt_id", "lease_s"}, required=("attempt_id",))
    task = held(agent, request, body)
    try:
        until = agent.extend(task, seconds(body.get("lease_s"), "lease_s", None))
    except LeaseLostError:
        raise _lost(task) from None
    return responses.json_answer({"task_id": task.task_id, "lease_until": until})


def release(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    body = fields(doc, {"attempt_id"}, required=("attempt_id",))
    task = held(agent, request, body)
    try:
        agent.release(task)
    except LeaseLostError:
        raise _lost(task) from None
    return responses.json_answer({"task_id": task.task_id, "state": "ready"})


def get(agent: RemoteAgent, request: Request, doc: Any) -> Response:
    task_id = request.path_params["task_id"]
    status = agent.get_task(task_id)
    if status is None:
        raise NotFoundError(f"task {task_id} not found")
    return responses.json_answer(asdict(status))
