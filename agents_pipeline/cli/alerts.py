"""Operator commands on alerts for `agents-pipeline` (argparse only at import time):
`alerts [--open] [--json]` and `silence NAME --for 2h`."""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command, add_json


def _alerts(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from agents_pipeline.cli.database import database
    from agents_pipeline.console import print_json, print_table
    from agents_pipeline.defs.alerts.channels import format_duration
    from agents_pipeline.defs.heartbeats.operator import list_alerts

    db = database("alerts")
    try:
        rows = list_alerts(db, open_only=args.open, limit=args.limit)
    finally:
        db.close()
    if args.json:
        print_json({"alerts": rows, "generated_at": datetime.now(UTC)})
        return 0
    if not rows:
        print("no open alerts" if args.open else "no alerts")
        return 0
    for row in rows:
        row["state"] = "resolved" if row["resolved_at"] else "OPEN"
        row["opened"] = row["opened_at"].astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        row["for"] = format_duration(row["duration_s"])
    print_table(rows, ["alert_id", "state", "severity", "kind", "agent", "opened", "for", "subject"])
    return 0


def _silence(args: argparse.Namespace) -> int:
    from datetime import UTC

    from agents_pipeline.cli.database import database
    from agents_pipeline.defs.heartbeats.operator import parse_duration, silence

    if args.clear == (args.duration is not None):
        raise ValueError("give either --for DURATION or --clear")
    seconds = None if args.clear else parse_duration(args.duration)
    db = database("alerts")
    try:
        until = silence(db, args.name, seconds)
    finally:
        db.close()
    if args.json:
        from agents_pipeline.console import print_json

        print_json({"agent": args.name, "silenced_until": until})
    elif until is None:
        print(f"{args.name}: silence lifted")
    else:
        print(f"{args.name}: alerts silenced until {until.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds this domain's sub-commands; each sets `handler` with parser.set_defaults(handler=...)."""
    alerts = add_command(subparsers, "alerts", "list alerts (newest first, open ones on top)",
                         ["agents-pipeline alerts --open", "agents-pipeline alerts --limit 20 --json"])
    alerts.add_argument("--open", action="store_true", help="only alerts that are still open")
    add_json(alerts)
    alerts.add_argument("--limit", type=int, default=100, help="at most this many alerts (default 100)")
    alerts.set_defaults(handler=_alerts)

    sil = add_command(subparsers, "silence", "hold an agent's alert notices for a while (maintenance)",
                      ["agents-pipeline silence crawler --for 2h", "agents-pipeline silence crawler --clear"])
    sil.add_argument("name", help="the agent's name")
    sil.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 2h, 30m, 1h30m, 1d")
    sil.add_argument("--clear", action="store_true", help="lift the silence now")
    add_json(sil)
    sil.set_defaults(handler=_silence)
