"""``agents-pipeline api``: serves the agent HTTP API (argparse only at import time)."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    from agents_pipeline.api.server import serve

    return serve(args.host, args.port, access_log=not args.no_access_log, workers=args.workers)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `api`; it sets `handler` with parser.set_defaults(handler=...)."""
    api = subparsers.add_parser("api", help="serve the agent HTTP API (ping URLs, heartbeat batches)")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=3001, help="port to listen on (default 3001)")
    api.add_argument("--workers", type=int, default=1,
                     help="processes serving the port (default 1: one core; each holds 3 database connections)")
    api.add_argument("--no-access-log", action="store_true", help="no line per request (benchmarks)")
    api.set_defaults(handler=_serve)
