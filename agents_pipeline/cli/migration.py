"""Sub-commands of the migration domain for `agents-pipeline` (argparse only at import time)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``migrate-sqlite PATH [--dry-run] [--json]``."""
    parser = subparsers.add_parser(
        "migrate-sqlite", help="import a legacy SQLite shared-state file (verified, resumable, re-runnable)",
        description="Copies every table of a legacy SQLite file into PostgreSQL: known tables into the fleet "
                    "schema, unknown ones into the legacy schema; rows that cannot be converted are kept in "
                    "fleet.legacy_rejects with the reason. Exits 1 when any count or checksum does not add up.")
    parser.add_argument("path", help="the SQLite file (a -wal file beside it is read too)")
    parser.add_argument("--dry-run", action="store_true", help="read and convert everything, write nothing")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--batch-size", type=int, default=20_000, help="rows per committed batch (default 20000)")
    parser.add_argument("--source", default=None,
                        help="name identifying this file across runs (default: the file's base name)")
    parser.add_argument("--side-by-side", dest="parallel", action="store_const", const=True, default=None,
                        help="load heartbeats, metrics and conversations in three worker processes "
                             "(default: only with 4+ cores, and never for WAL files)")
    parser.add_argument("--one-process", dest="parallel", action="store_const", const=False,
                        help="load every table in this process")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from agents_pipeline.console import print_json
    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.defs.migration.runner import migrate_sqlite

    def log(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr)

    url = None if args.dry_run else resolve_url()
    report = migrate_sqlite(args.path, url, dry_run=args.dry_run, batch_size=args.batch_size,
                            source_name=args.source, log=log, parallel=args.parallel)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.to_markdown())
    if not report.ok:
        print("agents-pipeline: migration did not verify: " + "; ".join(
            report.problems or [f"{t.table}: {'; '.join(t.notes)}" for t in report.tables if t.verified is False]),
            file=sys.stderr)
        return 1
    return 0
