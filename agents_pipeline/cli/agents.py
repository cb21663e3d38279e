"""``agents-pipeline agents ...``, ``heartbeat`` and ``status``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from agents_pipeline.console import ago, print_json, print_table


def _status_rows(rows: list[dict]) -> list[dict]:
    now = datetime.now(UTC)
    for row in rows:
        row["last_heartbeat"] = ago(row["last_seen"], now)
        row["since"] = ago(row["status_since"], now)
    return rows


def run(args: argparse.Namespace) -> int:
    from agents_pipeline.cli.database import database, read_database
    from agents_pipeline.core import ping_keys, registry
    from agents_pipeline.core.errors import ValidationError
    from agents_pipeline.core.shared_state import SharedState

    if args.command == "heartbeat":
        kind = "fail" if args.fail else "start" if args.start else "ok"
        with SharedState() as state:
            received = state.heartbeat(args.name, kind=kind, message=args.message)
        print(f"{args.name}: {kind} heartbeat stored at {received.isoformat()}")
        return 0

    # Listings only display: the replica may serve them (AGENTS_PIPELINE_READ_DATABASE_URL).
    listing = args.command == "status" or getattr(args, "action", None) == "list"
    db = read_database("agents") if listing else database("agents")
    try:
        if args.command == "status":
            rows = _status_rows(registry.list_agents(db))
            if args.json:
                print_json({"agents": rows, "generated_at": datetime.now(UTC)})
            elif rows:
                print_table(rows, ["name", "status", "last_heartbeat", "since", "status_message"])
            else:
                print("no agents registered (agents-pipeline agents register NAME)")
            return 0
        action = args.action
        if action == "register":
            reg = registry.register_agent(
                db, args.name, period_s=args.period, grace_s=args.grace, agent_type=args.agent_type,
                host=args.host, pid=args.pid, pidfile=args.pidfile, match=args.match,
            )
            url = ping_keys.ping_url(reg.ping_key) if reg.ping_key else None
            if args.json:
                print_json({"agent_id": reg.agent_id, "name": reg.name, "token": reg.token, "login": reg.login,
                            "ping_url": url})
            else:
                print(f"registered {reg.name} (id {reg.agent_id})")
                print(f"token (shown once; give it to the agent as AGENTS_PIPELINE_AGENT_TOKEN): {reg.token}")
                print(f"ping URL (`agents-pipeline agents ping-url {reg.name}` shows it again): {url}")
                if reg.login:
                    print(f"database login: {reg.login} (its password is the token; "
                          f"`agents-pipeline db grant-agent --agent {reg.name}` prints the agent's settings)")
                else:
                    print("no database login of its own (registering needs CREATEROLE): it shares the agent login",
                          file=sys.stderr)
        elif action == "list":
            rows = _status_rows(registry.list_agents(db))
            if args.json:
                print_json(rows)
            else:
                print_table(rows, ["name", "agent_type", "host", "period_s", "grace_s", "status", "last_heartbeat"])
        elif action in ("pause", "resume"):
            registry.set_paused(db, args.name, action == "pause")
            print(f"{args.name}: {'paused' if action == 'pause' else 'resumed'}")
        elif action == "rotate-token":
            print(registry.rotate_token(db, args.name))
        elif action == "ping-url":
            print(ping_keys.ping_url(ping_keys.ping_key(db, args.name)))
        elif action == "rotate-ping-key":
            print(ping_keys.ping_url(ping_keys.rotate_ping_key(db, args.name)))
            print(f"{args.name}: new ping key; the old ping URL no longer works", file=sys.stderr)
        elif action == "revoke-token":
            registry.revoke_token(db, args.name)
            print(f"{args.name}: token revoked", file=sys.stderr)
        elif action == "grant-keys":
            registry.grant_keys(db, args.name, args.prefix, write=args.write)
            print(f"{args.name}: may {'read and write' if args.write else 'read'} keys under {args.prefix!r}")
        elif action == "revoke-keys":
            registry.revoke_keys(db, args.name, args.prefix)
            print(f"{args.name}: no longer has keys under {args.prefix!r}")
        elif action == "capabilities":
            if args.capability or args.clear:
                if args.capability and args.clear:
                    raise ValidationError("give capabilities or --clear, not both")
                caps = registry.set_capabilities(db, args.name, args.capability)
            else:
                caps = registry.capabilities(db, args.name)
            print(f"{args.name}: may claim tasks needing {', '.join(caps) if caps else 'no capability'}")
        return 0
    finally:
        db.close()
