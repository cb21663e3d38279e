"""One migration of a legacy SQLite file into the fleet schema, start to verified report.

Order: agents first (so names resolve), then placeholders for every agent referenced but not
defined, then each legacy table batch by batch, then the user tables, then verification over
what PostgreSQL committed. Everything runs inside one SQLite read transaction.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg2

from agents_pipeline.core import advisory
from agents_pipeline.defs.migration import values as V
from agents_pipeline.defs.migration.loader import TableCounts, TableLoader
from agents_pipeline.defs.migration.mapping import Mapping
from agents_pipeline.defs.migration.mapping import to_dict as mapping_dict
from agents_pipeline.defs.migration.outcome import DEFAULT_MAX_REJECT_SHARE, rejects_over
from agents_pipeline.defs.migration.parallel import (
    PARALLEL_TABLES,
    load_in_parallel,
    start_workers,
    stop_workers,
    table_lock,
)
from agents_pipeline.defs.migration.parts import Part, ranges_wanted
from agents_pipeline.defs.migration.parts import plan as plan_parts
from agents_pipeline.defs.migration.progress import Progress
from agents_pipeline.defs.migration.report import RunReport, TableReport
from agents_pipeline.defs.migration.session import MigrationError, connect
from agents_pipeline.defs.migration.source import LegacySource, qident
from agents_pipeline.defs.migration.tables import KNOWN, SPECS, Context
from agents_pipeline.defs.migration.user_tables import copy_user_table, pg_identifier, verify_user_table
from agents_pipeline.defs.migration.verify import merged as merged_verification
from agents_pipeline.defs.migration.verify import verify_tables
from agents_pipeline.platform.history_start import history_start_note

DEFAULT_BATCH_SIZE = 20_000


def _register(conn, name: str, path: Path, wait_s: float = 5.0) -> int:
    """Takes the per-source lock, waiting a bounded time: a previous run's session (its own, or a
    worker's) may still be ending on the server when a re-run starts at once."""
    with conn, conn.cursor() as cur:
        def try_lock() -> bool:
            cur.execute("SELECT pg_try_advisory_lock(hashtext('legacy-migration'), hashtext(%s))", (name,))
            return cur.fetchone()[0]

        if not advisory.wait_for(try_lock, wait_s, poll_s=0.1):
            raise MigrationError(f"another migration of source {name!r} is running against this database "
                                 f"(its lock was not released within {wait_s:g} s)")
        cur.execute("""INSERT INTO fleet.legacy_sources (name, path, last_run_at) VALUES (%s, %s, now())
                       ON CONFLICT (name) DO UPDATE SET path = excluded.path, last_run_at = now()
                       RETURNING source_id""", (name, str(path)))
        return cur.fetchone()[0]


def _unlock(conn, name: str) -> None:
    """Releases the per-source lock before closing: a closed session's locks are freed only
    when its backend exits, which can lag behind an immediate re-run."""
    try:
        conn.rollback()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_unlock(hashtext('legacy-migration'), hashtext(%s))", (name,))
    except psycopg2.Error:
        pass
    finally:
        conn.close()


def _referenced_agents(source: LegacySource) -> set[str]:
    names: set[str] = set()
    for spec in SPECS:
        info = source.tables.get(spec.legacy)
        for col in spec.agent_refs:
            if info is None or col not in info.columns:
                continue
            cursor = source.select(spec.legacy, [col], distinct=True, capped=True)
            for rows in source.batches(cursor, 10_000):
                for (value,) in rows:
                    try:
                        if (name := V.name(value, col)) is not None:
                            names.add(name)
                    except V.Reject:
                        pass  # those rows are rejected with the reason when their table loads
    return names


def _resolve_agents(conn, ctx: Context, referenced: set[str], dry_run: bool, report: RunReport) -> None:
    """Placeholders keep imported references whole; they arrive paused, outside alerting."""
    if dry_run:
        ctx.agents = {name: i for i, name in enumerate(sorted(referenced), start=1)}
        return
    wanted = sorted(referenced)
    message = f"placeholder for an agent referenced by legacy SQLite {ctx.source_name} but not defined there"
    with conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO fleet.agents (name, status, paused, status_message, placeholder, legacy_source)
                       SELECT n, 'paused', true, %s, true, %s FROM unnest(%s::text[]) AS n
                       ON CONFLICT (name) DO NOTHING""", (message, ctx.source_id, wanted))
        report.placeholders_created = cur.rowcount
        cur.execute("SELECT name, agent_id FROM fleet.agents WHERE name = ANY(%s)", (wanted,))
        ctx.agents = dict(cur.fetchall())


def _last_seen(conn, source_id: int) -> None:
    """Imported agents remember their last legacy heartbeat (they stay paused). One probe per
    candidate agent down (agent_id, received_at): the daily partitions are walked newest first
    and stop at the first of this source's rows (measured 0.64 s as a GROUP BY over the 2 M
    heartbeats of the benchmark's file, a few ms as probes). A probe passes over the agent's
    heartbeats from elsewhere (legacy_source is not in the index), which paused imported agents
    and placeholders do not send."""
    with conn, conn.cursor() as cur:
        cur.execute("""UPDATE fleet.agents a SET last_seen = m.last, updated_at = now()
                       FROM (SELECT c.agent_id, l.last FROM fleet.agents c
                             CROSS JOIN LATERAL (SELECT h.received_at AS last FROM fleet.heartbeats h
                                                 WHERE h.agent_id = c.agent_id AND h.legacy_source = %s
                                                 ORDER BY h.received_at DESC LIMIT 1) l
                             WHERE c.paused AND (c.legacy_source = %s OR c.placeholder)) m
                       WHERE a.agent_id = m.agent_id AND (a.last_seen IS NULL OR a.last_seen < m.last)""",
                    (source_id, source_id))


def _earliest_imported(conn, source_id: int, agent_ids: list[int]):
    """The oldest imported heartbeat or sample of this source: the partitioned assets begin at
    AGENTS_PIPELINE_HISTORY_START, and older history cannot be rolled up or shown (issue #21).
    Heartbeats by one probe per agent up (agent_id, received_at); samples (whose index leads
    with the metric after the agent) only in the partitions older than that."""
    with conn, conn.cursor() as cur:
        cur.execute("""SELECT min(f.first) FROM unnest(%s::bigint[]) AS a(agent_id)
                       CROSS JOIN LATERAL (SELECT h.received_at AS first FROM fleet.heartbeats h
                                           WHERE h.agent_id = a.agent_id AND h.legacy_source = %s
                                           ORDER BY h.received_at LIMIT 1) f""", (agent_ids, source_id))
        first = cur.fetchone()[0]
        cur.execute("""SELECT min(sampled_at) FROM fleet.perf_samples
                       WHERE legacy_source = %s AND (%s::timestamptz IS NULL OR sampled_at < %s)""",
                    (source_id, first, first))
        sample = cur.fetchone()[0]
        return min((t for t in (first, sample) if t is not None), default=None)


def migrate_sqlite(path: str | Path, url: str | None, *, dry_run: bool = False,
                   batch_size: int = DEFAULT_BATCH_SIZE, source_name: str | None = None, log=None,
                   parallel: bool | None = None, mapping: Mapping | None = None,
                   max_reject_share: float = DEFAULT_MAX_REJECT_SHARE, accept_rejects: bool = False,
                   progress: Progress | None = None) -> RunReport:
    """Migrates (or, with dry_run, only reads and converts) the legacy file; returns the report.
    The caller decides what a failed verification means (the CLI exits 1, the op fails).

    ``parallel``: load the three big tables in worker processes side by side (files in
    rollback-journal mode), the two history tables split into rowid ranges of a worker each
    when they are big (parts.py). By default with 2 or more cores: since clean rows are rendered by
    SQLite, one pipeline leaves PostgreSQL's core partly idle, and side by side measured 14 %
    faster on 2 cores (21.4 s against 24.8 s for the benchmark's 3.1 M rows).

    ``mapping``: read a file in another dialect through it (``mapping.py``). A known table whose
    rejected share exceeds ``max_reject_share`` sets ``report.reject_problem`` (the caller exits
    1 / fails the run) unless ``accept_rejects``. ``progress`` is told rows done per table."""
    started = time.monotonic()
    say = log or (lambda _msg: None)
    if batch_size < 1:
        raise MigrationError(f"batch size must be at least 1, got {batch_size}")
    if not 0 <= max_reject_share <= 1:
        raise MigrationError(f"the share of rejects allowed must be between 0 and 1, got {max_reject_share}")
    progress = progress or Progress()
    with LegacySource(path, mapping) as source:
        name = source_name or source.path.name
        report = RunReport(source=name, path=str(source.path), dry_run=dry_run, journal_mode=source.journal_mode,
                           mapping=None if mapping is None else mapping_dict(mapping))
        known = [s for s in SPECS if s.legacy in source.tables and s.legacy not in source.as_legacy]
        user = [t for n, t in source.tables.items() if n not in KNOWN or n in source.as_legacy]
        if not known:
            report.notes.append("no legacy shared-state tables in this file: only its own tables are copied")
        conn = None if dry_run else connect(url or "")
        workers: dict = {}
        try:
            source_id = 0 if conn is None else _register(conn, name, source.path)
            ctx = Context(source_id=source_id, source_name=name, now=datetime.now(UTC))
            # Big history tables load side by side in worker processes when the snapshot allows.
            parallel = (os.cpu_count() or 1) >= 2 if parallel is None else parallel
            side_by_side = [t for t in PARALLEL_TABLES if t in source.tables and t not in source.as_legacy] \
                if parallel and not dry_run and source.journal_mode != "wal" else []
            def parts_of(table: str, ranges: int = 1) -> list[Part]:
                return [Part(table)] if conn is None else plan_parts(conn, source, source_id, table, ranges)

            ranges = ranges_wanted(source, side_by_side)
            worker_parts = [p for t in side_by_side for p in parts_of(t, ranges[t])]
            workers = start_workers(worker_parts)
            resolved = False
            for spec in SPECS:
                if spec is not SPECS[0] and not resolved:  # agents (SPECS[0]) first, then references
                    _resolve_agents(conn, ctx, _referenced_agents(source), dry_run, report)
                    resolved = True
                if spec.legacy not in source.tables or spec.legacy in source.as_legacy:
                    why = ("the mapping copies it to the legacy schema as it is" if spec.legacy in source.as_legacy
                           else "table not in this file (older legacy version): nothing to copy")
                    report.tables.append(TableReport(spec.legacy, f"fleet.{spec.target}", status="absent",
                                                     notes=[why]))
                    continue
                if spec.legacy in side_by_side:
                    continue  # loaded by the workers below
                say(f"migrating {spec.legacy} -> fleet.{spec.target}")
                progress.start(spec.legacy, _estimate(source, spec.legacy))
                done = []
                for part in parts_of(spec.legacy):   # the ranges an earlier run split it into
                    if conn is not None:
                        table_lock(conn, source_id, part)
                    done.append(TableLoader(conn, source, spec, ctx, batch_size, dry_run, progress=progress.update,
                                            part=part).run())
                counts = TableCounts.merged(done)
                progress.finish(spec.legacy)
                report.tables.append(_table_report(spec, counts, source, dry_run, user))
            if side_by_side:
                say(f"migrating {', '.join(p.label for p in worker_parts)} side by side, one process each")
                for table in side_by_side:
                    progress.start(table, _estimate(source, table))
                loaded = load_in_parallel(workers, source.path, url or "", ctx, batch_size, mapping=mapping,
                                          progress=progress.update)
                for table in side_by_side:
                    progress.finish(table)
                for table in side_by_side:
                    mine = sorted(((p, r) for p, r in loaded.items() if p.table == table), key=lambda pr: pr[0].part)
                    row = _table_report(KNOWN[table], TableCounts.merged([c for _, (c, _) in mine], side_by_side=True),
                                        source, dry_run, user)
                    checked = merged_verification([(part.label, verified) for part, (_, verified) in mine])
                    for name, value in checked.items():   # each worker verified its own table or range
                        setattr(row, name, row.notes + value if name == "notes" else value)
                    report.tables.append(row)
                order = [s.legacy for s in SPECS]
                report.tables.sort(key=lambda r: order.index(r.table))
            # Always, not only when heartbeats were new: a killed run may have loaded them all.
            if conn is not None and "agent_heartbeats" in source.tables:
                _last_seen(conn, source_id)
            if conn is not None and (note := history_start_note(_earliest_imported(conn, source_id, sorted(set(ctx.agents.values()))))):
                report.notes.append(note)
            _copy_user_tables(conn, source, user, source_id, batch_size, dry_run, report, say, progress)
            if conn is not None:
                say("verifying counts and checksums")
                verify_tables(url or "", source, [r for r in report.tables if r.table not in side_by_side],
                              source_id, connect)
            else:
                for row in report.tables:
                    if row.status in ("dry run", "user table"):
                        row.source_rows = source.count(row.table)
                        row.verified = row.source_rows == row.read
            if not accept_rejects:
                report.reject_problem = rejects_over(report, max_reject_share, conn, source_id)
            if conn is not None:
                _record(conn, source_id, report, started)
        finally:
            stop_workers(workers)   # after a finished load: only reaps them
            if conn is not None:
                _unlock(conn, name)
    report.seconds = time.monotonic() - started
    return report


def _estimate(source: LegacySource, table: str) -> int | None:
    """Rows to expect, for the progress bar: the largest rowid (one index lookup, where a
    count reads the whole table); None when the file gives no cheap answer."""
    try:
        return source.execute(f"SELECT max(rowid) FROM {qident(table)}").fetchone()[0]  # noqa: S608 - quoted
    except Exception:  # a table without rowid: the bar then counts without a total
        return None


def _table_report(spec, counts, source: LegacySource, dry_run: bool, user: list) -> TableReport:
    row = TableReport(spec.legacy, f"fleet.{spec.target}", status="dry run" if dry_run else "migrated",
                      read=counts.read, written=counts.written, rejected=counts.rejected,
                      new_this_run=counts.read, seconds=counts.seconds, reasons=counts.reasons)
    if spec.legacy in source.mapped_from:
        row.source_table = source.mapped_from[spec.legacy]
        if source.ignored.get(spec.legacy):
            row.notes.append(f"read from {row.source_table!r} through the mapping; column(s) "
                             f"{', '.join(source.ignored[spec.legacy])} not mapped: not imported")
        return row
    info = source.tables[spec.legacy]
    missing = [c for c in spec.columns if c not in info.columns]
    extra = [c for c in info.columns if c not in spec.columns and c not in ("id", "rowid")]
    if missing:
        row.notes.append(f"older file: column(s) {', '.join(missing)} missing, taken as NULL")
    if extra:
        row.notes.append(f"extra column(s) {', '.join(extra)}: whole table also copied to legacy schema")
        user.append(info)
    return row


def _copy_user_tables(conn, source: LegacySource, tables: list, source_id: int, batch_size: int, dry_run: bool,
                      report: RunReport, say, progress: Progress) -> None:
    existing: dict[str, str] = {}
    taken: set[str] = set()
    if conn is not None:
        with conn, conn.cursor() as cur:
            cur.execute("SELECT source_id, sqlite_name, pg_name FROM fleet.legacy_user_tables")
            for sid, sqlite_name, pg_name in cur.fetchall():
                if sid == source_id:
                    existing[sqlite_name] = pg_name
                else:
                    taken.add(pg_name)
    taken |= set(existing.values())
    for info in tables:
        pg_name = existing.get(info.name) or pg_identifier(info.name, taken, salt=f"{source_id}:")
        say(f"copying user table {info.name!r} -> legacy.{pg_name}")
        progress.start(info.name, _estimate(source, info.name) if info.has_rowid else None)
        result = copy_user_table(conn, source, info, source_id, batch_size, dry_run, pg_name, progress=progress.update)
        progress.finish(info.name)
        row = TableReport(info.name, f"legacy.{result.pg_name}", status="dry run" if dry_run else "user table",
                          read=result.read, written=result.written, rejected=result.rejected,
                          new_this_run=result.read, seconds=result.seconds, notes=result.notes)
        if result.rejected:
            row.reasons = {"value over the size limit (in fleet.legacy_rejects as "
                           f"{result.rejects_name})": result.rejected}
        if conn is not None:
            row.source_rows = source.count(info.name)
            count, digest, rejected = verify_user_table(conn, result, source_id)
            row.written, row.rejected = count, rejected
            row.checksum_ok = digest == result.expected_digest
            row.verified = row.checksum_ok and row.source_rows == row.read == count + rejected
            if not row.verified:
                report.problems.append(f"user table {info.name!r}: {row.source_rows} rows in SQLite, "
                                       f"{row.read} read, {count} in PostgreSQL + {rejected} rejected, checksum "
                                       f"{'ok' if row.checksum_ok else 'differs'}")
        report.tables.append(row)


def _record(conn, source_id: int, report: RunReport, started: float) -> None:
    import json

    report.seconds = time.monotonic() - started
    with conn, conn.cursor() as cur:
        cur.execute("""INSERT INTO fleet.legacy_runs (source_id, started_at, finished_at, ok, report)
                       VALUES (%s, now() - make_interval(secs => %s), now(), %s, %s::jsonb)""",
                    (source_id, report.seconds, report.ok, json.dumps(report.to_dict())))
