"""Sub-commands of the retention domain for `agents-pipeline` (argparse only at import time).

    agents-pipeline archive policy               retention per table and the archive folder
    agents-pipeline archive pending              days past retention still in PostgreSQL
    agents-pipeline archive list [--table T]     what the ledger says was archived or restored
    agents-pipeline archive run TABLE DAY        archive one day now (what the asset does)
    agents-pipeline archive restore TABLE DAY    put an archived day back and hold it
    (run and restore wait --lock-wait seconds for another run of the same day, then name its pid)
    agents-pipeline archive maintain             partitions ahead, ANALYZE, VACUUM, sizes
"""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import PROBLEMS, add_command, add_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``archive``; each action sets ``handler`` with set_defaults."""
    archive = add_command(subparsers, "archive", "retention: archive old days to Parquet, restore them",
                          ["agents-pipeline archive pending", "agents-pipeline archive run heartbeats 2025-01-31"])
    actions = archive.add_subparsers(title="actions", dest="action", required=True, metavar="ACTION")
    p = add_command(actions, "policy", "retention per table and the archive folder",
                    ["agents-pipeline archive policy", "agents-pipeline archive policy --json"])
    add_json(p)
    p.set_defaults(handler=policy_command)
    p = add_command(actions, "pending", "days past retention that PostgreSQL still holds",
                    ["agents-pipeline archive pending", "agents-pipeline archive pending --json"])
    add_json(p)
    p.set_defaults(handler=pending_command)
    p = add_command(actions, "list", "archived and restored days (the ledger)",
                    ["agents-pipeline archive list", "agents-pipeline archive list --table heartbeats --json"])
    p.add_argument("--table", default=None, help="only this table's days")
    add_json(p)
    p.set_defaults(handler=list_command)
    p = add_command(actions, "run", "archive one table's UTC day now, with progress on a terminal "
                    "(refused inside retention)",
                    ["agents-pipeline archive run heartbeats 2025-01-31",
                     "agents-pipeline archive run llm_runs 2025-01-31 --lock-wait 60 --json"])
    p.add_argument("table", help="the table, e.g. heartbeats (archive policy lists them)")
    p.add_argument("day", help="UTC day, e.g. 2025-01-31")
    _lock_wait_option(p)
    add_json(p)
    p.set_defaults(handler=run_command)
    p = add_command(actions, "restore", "put an archived day back into PostgreSQL and hold it, with progress on a "
                    "terminal; exit 1 when the day then differs from its archive",
                    ["agents-pipeline archive restore heartbeats 2025-01-31",
                     "agents-pipeline archive restore heartbeats 2025-01-31 --hold-days 30 --json"])
    p.add_argument("table", help="the table, e.g. heartbeats")
    p.add_argument("day", help="UTC day, e.g. 2025-01-31")
    p.add_argument("--hold-days", type=float, default=7.0,
                   help="days the restored day stays before archival may remove it again (default 7)")
    _lock_wait_option(p)
    add_json(p)
    p.set_defaults(handler=restore_command)
    p = add_command(actions, "maintain", "partitions ahead, ANALYZE parents, VACUUM where needed",
                    ["agents-pipeline archive maintain", "agents-pipeline archive maintain --json"])
    add_json(p)
    p.set_defaults(handler=maintain_command)


def _lock_wait_option(parser: argparse.ArgumentParser) -> None:
    from agents_pipeline.defs.retention.locks import LOCK_WAIT_S  # a light module: no psycopg2, no pyarrow

    parser.add_argument("--lock-wait", type=float, default=LOCK_WAIT_S, metavar="SECONDS",
                        help="how long to wait for another archival or restore of the same day before "
                             f"failing with the pid that holds it (default {LOCK_WAIT_S:g})")


def _url_and_root(require_root: bool = True):
    from agents_pipeline.core.errors import ConfigurationError
    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.defs.retention import policy

    url = resolve_url()
    root, why = policy.archive_root_or_explain(url)
    if root is None and require_root:
        raise ConfigurationError(why)
    return url, root, why


def policy_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import print_json
    from agents_pipeline.defs.retention import policy

    _, root, why = _url_and_root(require_root=False)
    days = policy.retention_days()
    info = {"archive_folder": str(root) if root else None, "note": why, "tables": {
        t: {"retention_days": days[t], "class": s.retention_class, "partitioned": s.partitioned,
            "newest_archivable_day": policy.last_archivable_day(days[t]).isoformat()}
        for t, s in policy.TABLES.items()}}
    if args.json:
        print_json(info)
    else:
        print(why)
        for t, v in info["tables"].items():
            print(f"{t:<15} {v['retention_days']:>5} days  ({v['class']}; archivable up to {v['newest_archivable_day']})")
    return 0


def pending_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import print_json
    from agents_pipeline.defs.retention import maintenance, policy

    url, _, _ = _url_and_root(require_root=False)
    pending = maintenance.pending_days(url, policy.retention_days())
    if args.json:
        print_json({t: [d.isoformat() for d in days] for t, days in pending.items()})
    else:
        for table, days in pending.items():
            print(f"{table:<15} {len(days):>4} day(s)" + (f": {days[0]} .. {days[-1]}" if days else ""))
    return 0


def list_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import print_json
    from agents_pipeline.defs.retention import policy
    from agents_pipeline.defs.retention.units import connect

    url, _, _ = _url_and_root(require_root=False)
    if args.table:
        policy.table_spec(args.table)
    with connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT l.table_name, l.day, l.status, l.row_count, l.file_bytes, l.manifest_path,
                      l.archived_at, l.restored_at, h.held_until
               FROM fleet.archive_ledger l
               LEFT JOIN fleet.retention_holds h USING (table_name, day)
               WHERE %s::text IS NULL OR l.table_name = %s
               ORDER BY l.table_name, l.day""", (args.table, args.table))
        rows = cur.fetchall()
    names = ["table", "day", "status", "rows", "bytes", "manifest", "archived_at", "restored_at", "held_until"]
    records = [dict(zip(names, r, strict=True)) for r in rows]
    if args.json:
        print_json(records)
    else:
        for r in records:
            held = f" held until {r['held_until']:%Y-%m-%d %H:%M}Z" if r["held_until"] else ""
            print(f"{r['table']:<15} {r['day']} {r['status']:<9} {r['rows']:>10} rows{held}")
        if not records:
            print("nothing archived yet")
    return 0


def run_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import Progress, print_json
    from agents_pipeline.defs.retention import archiver, policy

    url, root, _ = _url_and_root()
    day = policy.parse_day(args.day)
    policy.table_spec(args.table)
    with Progress(f"archive {args.table} {day}") as progress:   # a bar only when stderr is a terminal
        result = archiver.archive_day(url, root, args.table, day, policy.retention_days()[args.table],
                                      lock_wait_s=args.lock_wait, progress=progress)
    if args.json:
        print_json({**vars(result), "day": result.day.isoformat(), "seconds": round(result.seconds, 3)})
        return 0
    print(f"{args.table} {day}: {result.outcome}, {result.rows} rows, {result.file_bytes} bytes, "
          f"removed in {result.remove_ms:.1f} ms, {result.seconds:.2f} s in all"
          + (f" ({'; '.join(result.notes)})" if result.notes else ""))
    return 0


def restore_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import Progress, print_json
    from agents_pipeline.core.errors import ValidationError
    from agents_pipeline.defs.retention import policy, restore

    if not 0 < args.hold_days <= 3650:
        raise ValidationError(f"--hold-days must be between 0 and 3650, got {args.hold_days}")
    url, root, _ = _url_and_root()
    day = policy.parse_day(args.day)
    policy.table_spec(args.table)
    with Progress(f"restore {args.table} {day}") as progress:
        result = restore.restore_day(url, root, args.table, day, args.hold_days, lock_wait_s=args.lock_wait,
                                     progress=progress)
    code = 0 if result.exact else PROBLEMS
    if args.json:
        print_json({**vars(result), "day": result.day.isoformat(), "ok": result.exact})
        return code
    print(f"{args.table} {day}: {result.rows_inserted} rows restored ({result.rows_in_archive} in the archive); "
          f"{'identical to the archive' if result.exact else 'DIFFERS from the archive (rows present besides it)'}; "
          f"held until {result.held_until:%Y-%m-%d %H:%M}Z")
    return code


def maintain_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import print_json
    from agents_pipeline.defs.retention import maintenance, policy

    url, _, _ = _url_and_root(require_root=False)
    report = maintenance.run_maintenance(url, policy.retention_days())
    info = {"partitions_created": report.partitions_created, "analyzed": report.analyzed,
            "vacuumed": report.vacuumed, "database_bytes": report.database_bytes,
            "tables": [{**vars(t), "oldest_day": t.oldest_day.isoformat() if t.oldest_day else None,
                        "dead_ratio": round(t.dead_ratio, 4)} for t in report.tables]}
    if args.json:
        print_json(info)
    else:
        print(f"created {report.partitions_created} partitions; analyzed {', '.join(report.analyzed)}; "
              f"vacuumed {', '.join(report.vacuumed) or 'nothing'}; database {report.database_bytes} bytes")
        for t in report.tables:
            late = f", {t.overdue_days} days overdue" if t.overdue_days else ""
            print(f"{t.table:<15} {t.total_bytes:>12} bytes  dead {t.dead_ratio:.1%}  oldest {t.oldest_day or '-'}{late}")
    return 0
