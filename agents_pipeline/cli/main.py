"""Entry point of ``agents-pipeline``: parses arguments and dispatches to command modules.

Every failure ends as one line on stderr and a non-zero exit; tracebacks only with
AGENTS_PIPELINE_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

# One module per domain, registered explicitly: ``register(subparsers)`` adds parsers whose
# defaults carry a ``handler``. These modules import only argparse at module level (the heavy
# imports go inside the handlers), so `agents-pipeline heartbeat` stays fast.
from agents_pipeline.cli import (
    alerts,
    api,
    demo,
    fleet,
    langsmith,
    migration,
    performance,
    readiness,
    retention,
    security,
)
from agents_pipeline.cli import help as help_commands

DOMAIN_COMMANDS = (alerts, performance, langsmith, retention, migration, help_commands, security, readiness, demo,
                   api, fleet)


def _build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agents-pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    db = sub.add_parser("db", help="the shared-state database").add_subparsers(dest="action", required=True)
    db.add_parser("up", help="start the project-local PostgreSQL (when no URL is configured)")
    db.add_parser("down", help="stop the project-local PostgreSQL")
    db.add_parser("status", help="report the local cluster and the schema version")
    db.add_parser("url", help="print the shared-state database URL")
    db.add_parser("migrate", help="apply pending schema migrations (idempotent)")
    db.add_parser("env", help="print shell exports for Dagster's storage and the resource")
    backup = db.add_parser("backup", help="pg_dump the shared-state database (custom format)")
    backup.add_argument("path", nargs="?", default=None)
    restore = db.add_parser("restore", help="pg_restore a backup into the shared-state database")
    restore.add_argument("path")
    restore.add_argument("--into", default=None, help="refused: the target URL comes from AGENTS_PIPELINE_RESTORE_DATABASE_URL (argv shows in ps)")
    grant = db.add_parser("grant-agent", help="print the connection settings an agent host needs")
    grant.add_argument("--json", action="store_true")
    grant.add_argument("--new-password", action="store_true", help="set a new password for the agent login")
    grant.add_argument("--host", help="host agents use to reach the database (default: from the URL)")
    grant.add_argument("--port", type=int, help="port agents use (default: from the URL)")
    grant.add_argument("--agent", help="the settings of this agent's own login instead of the shared one")

    agents = sub.add_parser("agents", help="the agent registry").add_subparsers(dest="action", required=True)
    reg = agents.add_parser("register", help="register an agent, print its token once and its ping URL")
    reg.add_argument("name")
    reg.add_argument("--period", type=float, default=60.0, help="seconds between heartbeats (default 60)")
    reg.add_argument("--grace", type=float, default=30.0, help="seconds of lateness tolerated (default 30)")
    reg.add_argument("--type", dest="agent_type", default="generic")
    reg.add_argument("--host", default=None, help="host the agent runs on (default: this host)")
    where = reg.add_mutually_exclusive_group()
    where.add_argument("--pid", type=int)
    where.add_argument("--pidfile")
    where.add_argument("--match", help="regular expression over the process command line")
    reg.add_argument("--json", action="store_true")
    lst = agents.add_parser("list", help="list registered agents")
    lst.add_argument("--json", action="store_true")
    for action in ("pause", "resume", "rotate-token", "revoke-token"):
        agents.add_parser(action).add_argument("name")
    agents.add_parser("ping-url", help="print the agent's ping URL (base: AGENTS_PIPELINE_API_URL)").add_argument("name")
    agents.add_parser("rotate-ping-key", help="a new ping key; the old ping URL stops working").add_argument("name")
    keys = agents.add_parser("grant-keys", help="let an agent read (--write: and write) keys under a shared prefix")
    keys.add_argument("name")
    keys.add_argument("prefix")
    keys.add_argument("--write", action="store_true")
    unkeys = agents.add_parser("revoke-keys", help="take back a shared key prefix from an agent")
    unkeys.add_argument("name")
    unkeys.add_argument("prefix")
    caps = agents.add_parser("capabilities", help="set the task capabilities an agent may claim (none: show them)")
    caps.add_argument("name")
    caps.add_argument("capability", nargs="*")
    caps.add_argument("--clear", action="store_true", help="take every capability away")

    hb = sub.add_parser("heartbeat", help="send a heartbeat for an agent")
    hb.add_argument("name")
    kind = hb.add_mutually_exclusive_group()
    kind.add_argument("--fail", action="store_true", help="report failure: the agent goes down at once")
    kind.add_argument("--start", action="store_true", help="a unit of work begins")
    hb.add_argument("--message", default=None)

    st = sub.add_parser("status", help="each agent's status, last heartbeat and since when")
    st.add_argument("--json", action="store_true")

    sub.add_parser("dev", help="start `dagster dev` on the configured database (used by make run)")
    for module in DOMAIN_COMMANDS:
        module.register(sub)
    return parser


def _handler(args: argparse.Namespace) -> Callable[[argparse.Namespace], int]:
    if getattr(args, "handler", None) is not None:
        return args.handler
    if args.command == "db":
        from agents_pipeline.cli import db

        return db.run
    if args.command == "dev":
        from agents_pipeline.cli import dev

        return dev.run
    from agents_pipeline.cli import agents

    return agents.run


def main(argv: Sequence[str] | None = None) -> int:
    args = _build().parse_args(argv)
    try:
        return _handler(args)(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one line on stderr, never a traceback by default
        from agents_pipeline.core.dsn import mask_url

        if os.environ.get("AGENTS_PIPELINE_DEBUG"):
            raise
        print(f"agents-pipeline: {mask_url(str(exc)) or type(exc).__name__}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
