"""``agents-pipeline api``: serves the agent HTTP API (argparse only at import time)."""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command


def _serve(args: argparse.Namespace) -> int:
    from agents_pipeline.api.server import serve

    return serve(args.host, args.port, access_log=not args.no_access_log, workers=args.workers)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `api` (a server: it runs until stopped, so it has no --json)."""
    api = add_command(subparsers, "api", "serve the agent HTTP API (ping URLs, heartbeat batches)",
                      ["agents-pipeline api", "agents-pipeline api --host 0.0.0.0 --port 3001 --workers 2"])
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=3001, help="port to listen on (default 3001)")
    api.add_argument("--workers", type=int, default=1,
                     help="processes serving the port (default 1: one core; each holds 3 database connections)")
    api.add_argument("--no-access-log", action="store_true", help="no line per request (benchmarks)")
    api.set_defaults(handler=_serve)
