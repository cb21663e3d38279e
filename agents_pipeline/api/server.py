"""``agents-pipeline api``: uvicorn serving the app, with the redacting log configuration.

uvicorn picks uvloop and httptools when installed (they come with dagster-webserver). Idle, the
server waits on its sockets; the writers' threads sleep on a condition until a request comes.

One process serves on one core (the event loop and the writers share a GIL); ``workers`` > 1
runs that many processes on one socket under uvicorn's supervisor, each with its own seven
connections (three writers, four for the calls), as replicas behind a load balancer would be
(docs/BENCHMARKS.md measures both). The login is checked before any worker starts, so a wrong one fails the command at once.
"""

from __future__ import annotations

import logging
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from agents_pipeline.api import config
from agents_pipeline.api.app import create_app
from agents_pipeline.api.backend import Backend
from agents_pipeline.api.logs import log_config
from agents_pipeline.core.errors import DatabaseUnavailableError

APP_FACTORY = "agents_pipeline.api.app:create_app"   # what each worker process imports
log = logging.getLogger(__name__)


def _settings(host: str, port: int, access_log: bool) -> dict[str, Any]:
    return dict(host=host, port=port, log_config=log_config(access_log), access_log=access_log,
                limit_concurrency=config.LIMIT_CONCURRENCY, timeout_keep_alive=5, server_header=False,
                lifespan="on")


def build(host: str = config.DEFAULT_HOST, port: int = config.DEFAULT_PORT, *, access_log: bool = True) -> uvicorn.Server:
    """The single-process server (tests and `serve` with one worker)."""
    return uvicorn.Server(uvicorn.Config(create_app(), **_settings(host, port, access_log)))


def serve(host: str = config.DEFAULT_HOST, port: int = config.DEFAULT_PORT, *, access_log: bool = True,
          workers: int = 1) -> int:
    """Runs until SIGINT or SIGTERM; non-zero when the server could not start."""
    if workers <= 1:
        server = build(host, port, access_log=access_log)
        server.run()
        return 0 if server.started else 1
    uvicorn_config = uvicorn.Config(APP_FACTORY, factory=True, workers=workers, **_settings(host, port, access_log))
    backend = Backend()
    try:
        backend.verify()                   # an operator's login fails here, before any fork
    except DatabaseUnavailableError:
        log.warning("database unreachable at start-up; answering 503 until it is back")
    finally:
        backend.close()
    Multiprocess(uvicorn_config, sockets=[uvicorn_config.bind_socket()]).run()
    return 0
