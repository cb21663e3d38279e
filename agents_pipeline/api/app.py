"""The ASGI application: routes, the backend's lifetime, and one answer for unexpected errors.

Starlette rather than FastAPI: the routes are few and validate their own small inputs, so
FastAPI's models and OpenAPI generation would cost more at import than they give (the issue's
rule). An unexpected error is logged redacted, without the request's path, and answered with a
500 that carries no detail.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agents_pipeline.api import responses
from agents_pipeline.api.backend import Backend
from agents_pipeline.api.batches import post_heartbeats
from agents_pipeline.api.logs import redact
from agents_pipeline.api.pings import ping
from agents_pipeline.core.errors import AgentsPipelineError, DatabaseUnavailableError

log = logging.getLogger(__name__)


async def healthz(request: Request) -> Response:
    """For load balancers: the process serves. It does not ask the database (a replica is no
    better than another while PostgreSQL is away; the routes say 503 with Retry-After then)."""
    return JSONResponse({"status": "ok"})


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return responses.not_found()
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("request failed: %s: %s", type(exc).__name__, redact(str(exc)))
    return PlainTextResponse("internal error\n", status_code=500)


def create_app(backend_factory: Callable[[], Backend] = Backend) -> Starlette:
    """The app; the backend (pool and writers) is made at start-up and closed at shutdown. A
    database that is away at start-up is not fatal: requests get 503 until it is back. A login
    that is an operator's is: the server refuses to start."""

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
        try:
            yield
        finally:
            backend.close()

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/ping/{key}", ping, methods=["GET", "POST"]),
        Route("/ping/{key}/{signal}", ping, methods=["GET", "POST"]),
        Route("/v1/agents/{name:path}/heartbeats", post_heartbeats, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: _http_error, Exception: _unexpected})
