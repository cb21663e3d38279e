"""``agents-pipeline agents ...``, ``heartbeat`` and ``status``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from agents_pipeline.cli.conventions import add_command, add_json
from agents_pipeline.console import ago, print_json, print_table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``agents ...``, ``heartbeat`` and ``status``; each sets ``handler`` (``run``)."""
    agents = add_command(subparsers, "agents", "the agent registry: register, pause, tokens, keys, capabilities",
                         ["agents-pipeline agents register crawler --period 60", "agents-pipeline agents list"])
    agents.set_defaults(handler=run)
    sub = agents.add_subparsers(title="actions", dest="action", required=True, metavar="ACTION")
    reg = add_command(sub, "register", "register an agent, print its token once and its ping URL",
                      ["agents-pipeline agents register crawler --period 60 --grace 30 --match 'crawler\\.py'",
                       "agents-pipeline agents register nightly-report --period 86400 --json"])
    reg.add_argument("name", help="the agent's name (letters, digits, . _ -)")
    reg.add_argument("--period", type=float, default=60.0, help="seconds between heartbeats (default 60)")
    reg.add_argument("--grace", type=float, default=30.0, help="seconds of lateness tolerated (default 30)")
    reg.add_argument("--type", dest="agent_type", default="generic", help="a free label, e.g. crawler (default generic)")
    reg.add_argument("--host", default=None, help="host the agent runs on (default: this host)")
    where = reg.add_mutually_exclusive_group()
    where.add_argument("--pid", type=int, help="the agent's process id (for performance sampling)")
    where.add_argument("--pidfile", help="a file holding the agent's process id")
    where.add_argument("--match", help="regular expression over the process command line")
    add_json(reg)
    lst = add_command(sub, "list", "list registered agents", ["agents-pipeline agents list",
                                                              "agents-pipeline agents list --json"])
    add_json(lst)
    for action, summary, example in (
        ("pause", "pause an agent: no alerts while it is paused (maintenance)", "agents-pipeline agents pause crawler"),
        ("resume", "resume a paused agent: its heartbeats are watched again", "agents-pipeline agents resume crawler"),
        ("rotate-token", "give an agent a new token (printed once); the old one stops working",
         "agents-pipeline agents rotate-token crawler"),
        ("revoke-token", "revoke an agent's token and ping key: it can no longer report",
         "agents-pipeline agents revoke-token crawler"),
        ("ping-url", "print the agent's ping URL (base: AGENTS_PIPELINE_API_URL)",
         "curl -fsS \"$(agents-pipeline agents ping-url backup-job)\""),
        ("rotate-ping-key", "a new ping key; the old ping URL stops working",
         "agents-pipeline agents rotate-ping-key backup-job"),
    ):
        p = add_command(sub, action, summary, example)
        p.add_argument("name", help="the agent's name")
        add_json(p)
    keys = add_command(sub, "grant-keys", "let an agent read (--write: and write) keys under a shared prefix",
                       "agents-pipeline agents grant-keys crawler shared/queue/ --write")
    keys.add_argument("name", help="the agent's name")
    keys.add_argument("prefix", help="the key prefix, e.g. shared/queue/")
    keys.add_argument("--write", action="store_true", help="allow writes too (default: read only)")
    add_json(keys)
    unkeys = add_command(sub, "revoke-keys", "take back a shared key prefix from an agent",
                         "agents-pipeline agents revoke-keys crawler shared/queue/")
    unkeys.add_argument("name", help="the agent's name")
    unkeys.add_argument("prefix", help="the key prefix granted before")
    add_json(unkeys)
    caps = add_command(sub, "capabilities", "set the task capabilities an agent may claim (none given: show them)",
                       ["agents-pipeline agents capabilities crawler", "agents-pipeline agents capabilities crawler "
                        "fetch parse", "agents-pipeline agents capabilities crawler --clear"])
    caps.add_argument("name", help="the agent's name")
    caps.add_argument("capability", nargs="*", help="capabilities to set (replacing the current ones)")
    caps.add_argument("--clear", action="store_true", help="take every capability away")
    add_json(caps)

    hb = add_command(subparsers, "heartbeat", "send a heartbeat for an agent (its token from "
                     "AGENTS_PIPELINE_AGENT_TOKEN)", ["agents-pipeline heartbeat crawler",
                                                      "agents-pipeline heartbeat crawler --fail --message 'disk full'"])
    hb.add_argument("name", help="the agent's name")
    kind = hb.add_mutually_exclusive_group()
    kind.add_argument("--fail", action="store_true", help="report failure: the agent goes down at once")
    kind.add_argument("--start", action="store_true", help="a unit of work begins")
    hb.add_argument("--message", default=None, help="a short note stored with the heartbeat")
    add_json(hb)
    hb.set_defaults(handler=run)

    st = add_command(subparsers, "status", "each agent's status, last heartbeat and since when",
                     ["agents-pipeline status", "agents-pipeline status --json"])
    add_json(st)
    st.set_defaults(handler=run)


def _status_rows(rows: list[dict]) -> list[dict]:
    now = datetime.now(UTC)
    for row in rows:
        row["last_heartbeat"] = ago(row["last_seen"], now)
        row["since"] = ago(row["status_since"], now)
    return rows


def run(args: argparse.Namespace) -> int:
    from agents_pipeline.cli.database import database, read_database
    from agents_pipeline.core import ping_keys, registry
    from agents_pipeline.core.shared_state import SharedState

    if args.command == "heartbeat":
        kind = "fail" if args.fail else "start" if args.start else "ok"
        with SharedState() as state:
            received = state.heartbeat(args.name, kind=kind, message=args.message)
        if args.json:
            print_json({"agent": args.name, "kind": kind, "received_at": received})
        else:
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
                print_table(rows, ["name", "status", "lifecycle", "last_heartbeat", "since", "status_message"])
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
        else:
            _act(db, args)
        return 0
    finally:
        db.close()


def _act(db, args: argparse.Namespace) -> None:
    """The registry's actions: each prints one line for people, or its result with --json."""
    from agents_pipeline.core import ping_keys, registry
    from agents_pipeline.core.errors import ValidationError

    action, name = args.action, args.name
    result: dict = {"agent": name, "action": action}
    note_to_stderr = False
    if action in ("pause", "resume"):
        registry.set_paused(db, name, action == "pause")
        result["paused"] = action == "pause"
        line = f"{name}: {'paused' if action == 'pause' else 'resumed'}"
    elif action == "rotate-token":
        result["token"] = line = registry.rotate_token(db, name)
    elif action == "ping-url":
        result["ping_url"] = line = ping_keys.ping_url(ping_keys.ping_key(db, name))
    elif action == "rotate-ping-key":
        result["ping_url"] = line = ping_keys.ping_url(ping_keys.rotate_ping_key(db, name))
        print(f"{name}: new ping key; the old ping URL no longer works", file=sys.stderr)
    elif action == "revoke-token":
        registry.revoke_token(db, name)
        line, note_to_stderr = f"{name}: token revoked", True
    elif action == "grant-keys":
        registry.grant_keys(db, name, args.prefix, write=args.write)
        result.update(prefix=args.prefix, write=args.write)
        line = f"{name}: may {'read and write' if args.write else 'read'} keys under {args.prefix!r}"
    elif action == "revoke-keys":
        registry.revoke_keys(db, name, args.prefix)
        result["prefix"] = args.prefix
        line = f"{name}: no longer has keys under {args.prefix!r}"
    else:  # capabilities
        if args.capability or args.clear:
            if args.capability and args.clear:
                raise ValidationError("give capabilities or --clear, not both")
            caps = registry.set_capabilities(db, name, args.capability)
        else:
            caps = registry.capabilities(db, name)
        result["capabilities"] = list(caps)
        line = f"{name}: may claim tasks needing {', '.join(caps) if caps else 'no capability'}"
    if args.json:
        print_json(result)
    else:
        print(line, file=sys.stderr if note_to_stderr else sys.stdout)
