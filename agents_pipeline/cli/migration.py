"""Sub-commands of the migration domain for `agents-pipeline` (argparse only at import time)."""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command, add_json

EXAMPLES = [
    "agents-pipeline migrate-sqlite ~/old/background_agents.db --dry-run",
    "agents-pipeline migrate-sqlite ~/old/other.db --dry-run --write-mapping mapping.yaml",
    "agents-pipeline migrate-sqlite ~/old/other.db --mapping mapping.yaml --json",
]


def _share(text: str) -> float:
    """'1%', '1 %' or '0.01'."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share (use 0.05 or 5%)") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 100 %")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``migrate-sqlite PATH [--dry-run] [--json] [--mapping F | --write-mapping F] ...``."""
    parser = add_command(
        subparsers, "migrate-sqlite", "import a legacy SQLite shared-state file (verified, resumable, re-runnable)",
        EXAMPLES,
        description="Copies every table of a legacy SQLite file into PostgreSQL: known tables into the fleet "
                    "schema, unknown ones into the legacy schema; rows that cannot be converted are kept in "
                    "fleet.legacy_rejects with the reason. A file in another layout is read through a mapping "
                    "(--write-mapping drafts one). Progress goes to stderr when it is a terminal. Exit 1 when a "
                    "count or checksum did not verify, or more than --max-reject-share of a known table's rows "
                    "were rejected.")
    parser.add_argument("path", help="the SQLite file (a -wal file beside it is read too)")
    parser.add_argument("--dry-run", action="store_true", help="read and convert everything, write nothing")
    add_json(parser, "print the report as one JSON document on stdout")
    parser.add_argument("--batch-size", type=int, default=20_000,
                        help="rows per committed batch (default 20000; batches are also cut at 4 MiB of values)")
    parser.add_argument("--source", default=None,
                        help="name identifying this file across runs (default: the file's base name)")
    parser.add_argument("--side-by-side", dest="parallel", action="store_const", const=True, default=None,
                        help="load heartbeats, metrics and conversations in three worker processes "
                             "(default with 2+ cores, never for WAL files)")
    parser.add_argument("--one-process", dest="parallel", action="store_const", const=False,
                        help="load every table in this process")
    maps = parser.add_mutually_exclusive_group()
    maps.add_argument("--mapping", metavar="FILE", help="read the file through this mapping (YAML, see docs/migration.md)")
    maps.add_argument("--write-mapping", metavar="FILE",
                      help="with --dry-run: draft a mapping for the file's tables into FILE (refuses to overwrite)")
    parser.add_argument("--max-reject-share", type=_share, default=None, metavar="SHARE",
                        help="exit 1 when more than this share of a known table's rows is rejected (default 1%%)")
    parser.add_argument("--accept-rejects", action="store_true", help="exit 0 whatever share of rows is rejected")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    # A file that cannot be read, a bad mapping or an unreachable database raises: main prints
    # one line (a JSON error document with --json) and exits 2.
    if args.write_mapping:
        return _write_mapping(args)
    return _migrate(args)


def _write_mapping(args: argparse.Namespace) -> int:
    import os
    import sys
    from pathlib import Path

    from agents_pipeline.console import print_json
    from agents_pipeline.defs.migration.draft import draft_mapping, render
    from agents_pipeline.defs.migration.mapping import MappingError, parse_mapping
    from agents_pipeline.defs.migration.source import LegacySource

    if not args.dry_run:
        raise MappingError("--write-mapping drafts a mapping without migrating: add --dry-run")
    out = Path(args.write_mapping)
    with LegacySource(args.path) as source:
        drafts = draft_mapping(source)
        text = render(drafts, str(source.path))
    import yaml

    parse_mapping(yaml.safe_load(text), "the drafted mapping")   # the draft must load as it is written
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise MappingError(f"{out}: already exists; the draft is not written over it") from None
    except OSError as exc:
        raise MappingError(f"{out}: cannot be written ({exc.strerror})") from None
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    summary = {d.table: d.target for d in drafts}
    if args.json:
        print_json({"mapping": str(out), "tables": summary})
    else:
        for d in drafts:
            print(f"{d.table} -> {d.target}" + (f" ({d.comment})" if d.comment else ""))
        print(f"agents-pipeline: mapping drafted in {out}: check and edit it, then run with --mapping {out}",
              file=sys.stderr)
    return 0


def _migrate(args: argparse.Namespace) -> int:
    import sys

    from agents_pipeline.console import print_json
    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.defs.migration.mapping import load_mapping
    from agents_pipeline.defs.migration.outcome import DEFAULT_MAX_REJECT_SHARE
    from agents_pipeline.defs.migration.progress import BarProgress, Progress
    from agents_pipeline.defs.migration.runner import migrate_sqlite

    bars = sys.stderr.isatty()
    progress = BarProgress(sys.stderr) if bars else Progress()

    def log(message: str) -> None:
        if bars:
            from tqdm import tqdm

            tqdm.write(message, file=sys.stderr)
        elif not args.json:
            print(message, file=sys.stderr)

    mapping = load_mapping(args.mapping) if args.mapping else None
    url = None if args.dry_run else resolve_url()
    share = DEFAULT_MAX_REJECT_SHARE if args.max_reject_share is None else args.max_reject_share
    report = migrate_sqlite(args.path, url, dry_run=args.dry_run, batch_size=args.batch_size,
                            source_name=args.source, log=log, parallel=args.parallel, mapping=mapping,
                            max_reject_share=share, accept_rejects=args.accept_rejects, progress=progress)
    if args.json:
        print_json(report.to_dict())
    else:
        print(report.to_markdown())
    if not report.ok:
        print("agents-pipeline: migration did not verify: " + "; ".join(
            report.problems or [f"{t.table}: {'; '.join(t.notes)}" for t in report.tables if t.verified is False]),
            file=sys.stderr)
        return 1
    if report.reject_problem:
        print(f"agents-pipeline: {report.reject_problem}", file=sys.stderr)
        return 1
    return 0
