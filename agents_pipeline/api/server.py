"""``agents-pipeline api``: uvicorn serving the app, with the redacting log configuration.

uvicorn picks uvloop and httptools when installed (they come with dagster-webserver). Idle, the
server waits on its sockets; the writers' threads sleep on a condition until a request comes.
"""

from __future__ import annotations

import uvicorn

from agents_pipeline.api import config
from agents_pipeline.api.app import create_app
from agents_pipeline.api.logs import log_config


def build(host: str = config.DEFAULT_HOST, port: int = config.DEFAULT_PORT, *, access_log: bool = True) -> uvicorn.Server:
    app_config = uvicorn.Config(
        create_app(), host=host, port=port, log_config=log_config(access_log), access_log=access_log,
        limit_concurrency=config.LIMIT_CONCURRENCY, timeout_keep_alive=5, server_header=False,
        lifespan="on",
    )
    return uvicorn.Server(app_config)


def serve(host: str = config.DEFAULT_HOST, port: int = config.DEFAULT_PORT, *, access_log: bool = True) -> int:
    """Runs until SIGINT or SIGTERM; non-zero when the server could not start."""
    server = build(host, port, access_log=access_log)
    server.run()
    return 0 if server.started else 1
