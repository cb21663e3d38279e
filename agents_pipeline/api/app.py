"""The ASGI application: routes, the backend's lifetime, and one answer for unexpected errors.

Starlette rather than FastAPI: the routes are few and validate their own small inputs, so
FastAPI's models and OpenAPI generation would cost more at import than they give (the issue's
rule). An unexpected error is logged redacted, without the request's path, and answered with a
500 that carries no detail.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agents_pipeline.api import kv, messages, openapi, operator, reports, responses, tasks
from agents_pipeline.api.backend import Backend
from agents_pipeline.api.batches import post_heartbeats
from agents_pipeline.api.calls import agent_call
from agents_pipeline.api.logs import redact
from agents_pipeline.api.pings import PingFastPath, ping
from agents_pipeline.core.errors import AgentsPipelineError, DatabaseUnavailableError

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    """For load balancers: the process serves. It does not ask the database (a replica is no
    better than another while PostgreSQL is away; the routes say 503 with Retry-After then)."""
    return JSONResponse({"status": "ok"})


async def openapi_json(request: Request) -> Response:
    """The OpenAPI 3 document of every route (api/openapi.py)."""
    return responses.json_answer(openapi.document())


async def _http_error(request: Request, exc: Exception) -> Response:
    """No route, or not this method: JSON under /v1 like every /v1 refusal; elsewhere Starlette's
    text, so a refused ping key reads exactly like a path that does not exist."""
    assert isinstance(exc, HTTPException)
    under_v1 = request.url.path.startswith("/v1/")
    if exc.status_code == 404:
        return responses.not_found(json=under_v1)
    if under_v1:
        return responses.refused(exc.status_code, str(exc.detail).lower(), json=True, headers=exc.headers)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)


def _failed(exc: Exception, *, json: bool = False) -> Response:
    log.error("request failed: %s: %s", type(exc).__name__, redact(str(exc)))
    if json:
        return responses.refused(500, "internal error", json=True)
    return PlainTextResponse("internal error\n", status_code=500)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return _failed(exc, json=request.url.path.startswith("/v1/"))


def create_app(backend_factory: Callable[[], Backend] = Backend) -> PingFastPath:
    """The app; the backend (pool and writers) is made at start-up and closed at shutdown. A
    database that is away at start-up is not fatal: requests get 503 until it is back. A login
    that is an operator's is: the server refuses to start. Pings without a body take the fast
    path in front of Starlette (api/pings.py)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        backend = backend_factory()
        try:
            backend.verify()
        except DatabaseUnavailableError:
            log.warning("database unreachable at start-up; answering 503 until it is back")
        except AgentsPipelineError:
            backend.close()
            raise
        app.state.backend = backend
        log.info("agent API ready (database login %s)", backend.login)
        # What start-up made (modules, routes, the pools) lives as long as the process: out of
        # the collector's sight, full collections stay short and rare under load (p99 latency).
        gc.freeze()
        try:
            yield
        finally:
            backend.close()

    app = Starlette(routes=routes(), lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _unexpected})
    return PingFastPath(app, _failed)


def routes() -> list[Route]:
    """Every route; api/openapi.py describes each (a test holds the two in step)."""
    agent = "/v1/agents/{name:path}"
    calls = [
        ("/metrics", "POST", reports.report_metrics),
        ("/conversations", "POST", reports.record_conversation),
        ("/messages", "POST", messages.send),
        ("/messages/claim", "POST", messages.claim),
        ("/messages/{message_id:int}/ack", "POST", messages.ack),
        ("/kv", "GET", kv.get_value),
        ("/kv", "PUT", kv.put_value),
        ("/help-requests", "POST", reports.submit_help_request),
        ("/help-requests/{request_id:int}", "GET", reports.get_help_request),
        ("/tasks", "POST", tasks.submit),
        ("/tasks/batch", "POST", tasks.submit_batch),
        ("/tasks/claim", "POST", tasks.claim),
        ("/tasks/{task_id:int}", "GET", tasks.get),
        ("/tasks/{task_id:int}/complete", "POST", tasks.complete),
        ("/tasks/{task_id:int}/fail", "POST", tasks.fail),
        ("/tasks/{task_id:int}/extend", "POST", tasks.extend),
        ("/tasks/{task_id:int}/release", "POST", tasks.release),
    ]
    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/ping/{key}", ping, methods=["GET", "POST"]),
        Route("/ping/{key}/{signal}", ping, methods=["GET", "POST"]),
        Route(f"{agent}/heartbeats", post_heartbeats, methods=["POST"]),
        *(Route(agent + suffix, agent_call(call, name=f"{call.__module__.rsplit('.', 1)[-1]}.{call.__name__}"),
                methods=[method]) for suffix, method, call in calls),
        Route("/v1/status", operator.get_status, methods=["GET"]),
        Route("/v1/alerts", operator.get_alerts, methods=["GET"]),
        Route("/metrics", operator.get_metrics, methods=["GET"]),
    ]
