"""``agents-pipeline soak``: the live test of the whole stack under faults (argparse only at import)."""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command, add_json


def register(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "soak", "run the whole stack for N minutes under injected faults and report what broke",
        ["agents-pipeline soak --minutes 60 --agents 200 --out docs/soak/2026-12-05",
         "agents-pipeline soak --minutes 2 --agents 20 --json --no-record"],
        description="Starts a throwaway PostgreSQL, the code server, daemon, webserver and agent API as separate "
                    "processes and a fleet of agents, injects faults on a schedule (PostgreSQL restart, kill -9 of "
                    "agents, daemon and code server, a 10x burst, a fleet collapse), restarts what it killed, and "
                    "writes REPORT.md with PNG plots (docs/soak.md). Exits 1 when a goal was missed.")
    p.add_argument("--minutes", type=float, default=60.0, help="how long the faults run (at least 2; default 60)")
    p.add_argument("--agents", type=int, default=200, help="simulated agents, four per process (default 200)")
    p.add_argument("--out", default=None, help="report folder (default: a new folder under /tmp)")
    p.add_argument("--no-record", action="store_true", help="do not record the report in Dagster")
    add_json(p, "print the findings as one JSON document on stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import logging
    import sys
    import tempfile
    from pathlib import Path

    from agents_pipeline.console import print_json
    from agents_pipeline.core.errors import ValidationError

    if args.minutes < 2 or args.agents < 8:
        raise ValidationError("soak needs --minutes 2 or more and --agents 8 or more")
    from agents_pipeline.soak.run import soak

    # main configured WARNING for every command; the soak narrates its faults at INFO.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s soak %(message)s", force=True)
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="agents-pipeline-soak-report-"))
    found = soak(out.resolve(), args.minutes, args.agents, record=not args.no_record)
    passed = all(found["verdict"].values())
    if args.json:
        print_json(found)
    else:
        for goal, ok in found["verdict"].items():
            print(f"{'PASS' if ok else 'FAIL'}  {goal}")
        print(f"report: {found['report']} ({found['recorded']})")
    return 0 if passed else 1
