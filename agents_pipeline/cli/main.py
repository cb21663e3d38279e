"""Entry point of ``agents-pipeline``: parses arguments and dispatches to command modules.

The conventions (help with examples, ``--json``, exit codes, stderr for logs) live in
``cli.conventions``; this module applies the exit codes in one place: a handler returns 0 or 1,
and any exception ends as one line on stderr (and, under ``--json``, one error document on
stdout) with exit code 2 (1 for a failed verification). Tracebacks only with
AGENTS_PIPELINE_DEBUG=1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

# One module per domain, registered explicitly: ``register(subparsers)`` adds parsers whose
# defaults carry a ``handler``. These modules import only argparse at module level (the heavy
# imports go inside the handlers), so `agents-pipeline heartbeat` stays fast.
from agents_pipeline.cli import (
    agents,
    alerts,
    api,
    db,
    demo,
    dev,
    fleet,
    langsmith,
    migration,
    performance,
    readiness,
    retention,
    security,
    soak,
)
from agents_pipeline.cli import help as help_commands
from agents_pipeline.cli.conventions import (
    EXIT_CODES_TEXT,
    CommandParser,
    PackageVersion,
    exit_code,
    one_line,
)

DOMAIN_COMMANDS = (db, agents, alerts, performance, langsmith, retention, migration, help_commands, security,
                   readiness, demo, api, dev, soak, fleet)

DESCRIPTION = """Operate a fleet of background AI agents: register them, record their heartbeats,
see their health, alerts and performance, sync their LangSmith runs, archive old data, back up
the database, and serve the Dagster UI and the agent API."""

EPILOG = f"""getting started:
  agents-pipeline db up                       # a project-local PostgreSQL (unless a URL is set)
  agents-pipeline db migrate                  # the schema
  agents-pipeline agents register crawler --period 60
  agents-pipeline heartbeat crawler           # the token from AGENTS_PIPELINE_AGENT_TOKEN
  agents-pipeline status

Every command takes -h. Commands that act take --json: one JSON document on stdout; logs,
warnings and progress go to stderr. The full reference is docs/cli.md.

{EXIT_CODES_TEXT}"""


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="agents-pipeline", description=DESCRIPTION, epilog=EPILOG)
    parser.add_argument("--version", action=PackageVersion)
    sub = parser.add_subparsers(title="commands", dest="command", required=True, metavar="COMMAND")
    for module in DOMAIN_COMMANDS:
        module.register(sub)
    return parser


def _report(exc: BaseException, args: argparse.Namespace, code: int) -> None:
    message = one_line(exc)
    print(f"agents-pipeline: {message}", file=sys.stderr)
    if getattr(args, "json", False):   # a machine reading stdout still gets one document
        from agents_pipeline.console import print_json

        print_json({"ok": False, "exit_code": code, "error": message})


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Logs are for people watching: stderr, warnings and above, never mixed into stdout's result.
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="agents-pipeline: %(levelname)s: %(message)s")
    try:
        return args.handler(args)
    except KeyboardInterrupt as exc:
        return exit_code(exc)
    except Exception as exc:
        if os.environ.get("AGENTS_PIPELINE_DEBUG"):
            raise
        code = exit_code(exc)
        _report(exc, args, code)
        return code


if __name__ == "__main__":
    sys.exit(main())
