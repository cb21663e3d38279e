"""``agents-pipeline api``: serves the agent HTTP API; ``api-key create|revoke|list``: the operator
API keys its GET /v1/status, /v1/alerts and /metrics take (argparse only at import time)."""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command, add_json


def _serve(args: argparse.Namespace) -> int:
    from agents_pipeline.api.server import serve

    return serve(args.host, args.port, access_log=not args.no_access_log, workers=args.workers)


def _api_key(args: argparse.Namespace) -> int:
    """Bad names, an unknown key and an unreachable database raise: main prints one line (a JSON
    error document with --json) and exits 2."""
    from agents_pipeline.cli.database import database
    from agents_pipeline.console import print_json, print_table
    from agents_pipeline.core import api_keys

    db = database("api-key")
    try:
        if args.action == "create":
            key = api_keys.create_api_key(db, args.name)
            if args.json:
                print_json({"name": args.name, "key": key})
            else:
                print(f"API key {args.name} (shown once; give it as Authorization: Bearer <key>):")
                print(key)
        elif args.action == "revoke":
            api_keys.revoke_api_key(db, args.name)
            if args.json:
                print_json({"name": args.name, "revoked": True})
            else:
                print(f"API key {args.name} revoked: its next request gets 401")
        else:
            rows = api_keys.list_api_keys(db)
            if args.json:
                print_json({"api_keys": rows})
            elif rows:
                print_table(rows, ["name", "created_at", "last_used_at", "revoked_at"])
            else:
                print("no API keys (agents-pipeline api-key create NAME)")
    finally:
        db.close()
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `api` (a server: it runs until stopped, so it has no --json) and `api-key`."""
    api = add_command(subparsers, "api", "serve the agent HTTP API (ping URLs, heartbeats, the agent calls, "
                      "operator reads)",
                      ["agents-pipeline api", "agents-pipeline api --host 0.0.0.0 --port 3001 --workers 2"],
                      description="Serve the agent HTTP API: ping URLs, heartbeat batches, every agent call and "
                                  "the operator reads (docs/api.md).")
    api.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    api.add_argument("--port", type=int, default=3001, help="port to listen on (default 3001)")
    api.add_argument("--workers", type=int, default=1,
                     help="processes serving the port (default 1: one core; each holds 7 database connections)")
    api.add_argument("--no-access-log", action="store_true", help="no line per request (benchmarks)")
    api.set_defaults(handler=_serve)

    key = add_command(subparsers, "api-key", "operator API keys for GET /v1/status, /v1/alerts and /metrics",
                      ["agents-pipeline api-key create prometheus   # prints the key once (docs/api.md)"])
    actions = key.add_subparsers(dest="action", required=True, title="actions")
    create = add_command(actions, "create", "make a key and print it once",
                         ["agents-pipeline api-key create grafana --json"])
    revoke = add_command(actions, "revoke", "end the live key of that name at once",
                         ["agents-pipeline api-key revoke grafana"])
    listing = add_command(actions, "list", "every key's name, creation, last use and revocation",
                          ["agents-pipeline api-key list --json"])
    for sub in (create, revoke):
        sub.add_argument("name", help="1-100 letters, digits or _ . -")
    for sub in (create, revoke, listing):
        add_json(sub)
        sub.set_defaults(handler=_api_key)
