"""Archive one table's day: Parquet + manifest, read back and compared, then out of PostgreSQL.

The export and verify work in short chunks with pauses between them
(``AGENTS_PIPELINE_ARCHIVE_PACE``), and without parallel workers, so that the agents' heartbeat
writers keep their latency while a day is archived.

Order, each step safe to be killed after (the next run finishes or redoes the day):
  1. export the rows and their fingerprint in one snapshot; write the file under a temporary
     name, fsync, rename (a half-written file never has the final name);
  2. verify: read the file back whole (sha256, page checksums), load it into a temporary table
     and compare fleet.row_fingerprint sums with the source; write the manifest; ledger 'verified';
  3. remove: partitioned tables DETACH ... CONCURRENTLY and DROP (the partition was frozen before
     the export by a NOT VALID CHECK (false), so no late row can slip in between); unpartitioned
     tables DELETE in small batches only the rows whose ctid and text match what was archived;
  4. ledger 'archived'.
A killed unpartitioned delete leaves some rows archived and some not: the next run merges the
day's previous archive with what is left, so the file always holds the whole day.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from psycopg2 import sql

from agents_pipeline.console import Progress
from agents_pipeline.defs.retention import parquet_io, store
from agents_pipeline.defs.retention.locks import LOCK_WAIT_S, lock_unit
from agents_pipeline.defs.retention.parquet_io import ArchiveFileError
from agents_pipeline.defs.retention.partitions import (
    detach_concurrently,
    drop_detached,
    freeze_partition,
    partition_ident,
    partition_state,
)
from agents_pipeline.defs.retention.policy import ensure_past_retention, table_spec
from agents_pipeline.defs.retention.priority import yield_cpu_to_writers
from agents_pipeline.defs.retention.units import connect, create_temp_like, day_filter

# Test seam: a callable run at each named step ("after_write", "after_verify", "after_detach",
# "during_delete"); the crash tests SIGKILL the process there. None in production.
checkpoint: Callable[[str], None] | None = None
DELETE_BATCH = 5000
PACE_ENV = "AGENTS_PIPELINE_ARCHIVE_PACE"
DEFAULT_PACE = 25


def _step(name: str) -> None:
    if checkpoint is not None:
        checkpoint(name)


@dataclass
class DayResult:
    table: str
    day: date
    outcome: str                 # archived, already_archived, held, no_data, kept
    rows: int = 0
    file_bytes: int = 0
    seconds: float = 0.0
    remove_ms: float = 0.0       # detach + drop (partitioned) or the batched delete
    drop_ms: float = 0.0
    paused_s: float = 0.0        # slept between chunks of the export and verify (the pace)
    manifest: str | None = None
    notes: list[str] = field(default_factory=list)


def _valid_manifest(root: Path, table: str, day: date) -> store.Manifest | None:
    """The day's manifest when it and every file it names are intact, else None."""
    manifest = store.read_manifest(root, table, day)
    if manifest is None:
        return None
    folder = store.unit_dir(root, table, day)
    for entry in manifest.files:
        path = folder / entry.file
        if not path.is_file() or parquet_io.sha256_file(path) != entry.sha256:
            return None
    return manifest


def _previous_archive(root: Path, table: str, day: date) -> store.Manifest | None:
    """The day's earlier archive; a damaged one stops the run (it may hold rows found nowhere else)."""
    previous = _valid_manifest(root, table, day)
    if previous is None and store.read_manifest(root, table, day) is not None:
        raise ArchiveFileError(
            f"the archive of {table} {day} in {store.unit_dir(root, table, day)} is damaged; move it "
            "aside (it may hold rows no longer in PostgreSQL) before archiving this day again")
    return previous


def pace() -> parquet_io.Pacer:
    """The pace of the export and verify from ``AGENTS_PIPELINE_ARCHIVE_PACE``: the share of
    the wall-clock time, in percent, that they may work (default 25: each chunk is followed by
    a pause three times as long; 100 never pauses).

    Why pause at all, with the archiver already at SCHED_IDLE: on the 2-core benchmark machine
    (a KVM guest) the writers slowed down whenever the archiver worked, whatever its priority
    (28 % of the writes ending during its work above the idle p99 with 1 MB chunks, 7 % with
    128 kB chunks) and hardly while it paused. Short chunks bound how long a write waits; the
    pause bounds how many writes meet a chunk. Measured (docs/benchmarks/retention.md): the
    writers' p99 during archival went from 2.0-3.9 times their idle p99 to 1.1-1.7 at the
    default pace (six runs; 1.6 in one run at 50), at 32,000-38,000 rows/s (64,000 at 50)
    instead of 200,000."""
    raw = os.environ.get(PACE_ENV, str(DEFAULT_PACE))
    try:
        return parquet_io.Pacer(int(raw))
    except ValueError:
        raise ValueError(f"{PACE_ENV} must be an integer percentage from 1 to 100, not {raw!r}") from None


def _write_unit(conn, root: Path, table: str, day: date, days: int,
                sources: dict[str, sql.Composable], previous: store.Manifest | None,
                pacer: parquet_io.Pacer, expected_rows: int | None = None) -> store.Manifest:
    """Exports each member's rows (one snapshot), writes, verifies by loading back; manifest.

    The export, the read back, the load and both fingerprints run in chunks of 128 kB of heap
    (or 2,048 rows) at ``pacer``'s pace, as autovacuum paces itself, so that the agents' writers
    find the CPUs free most of the time (see ``pace``). The chunks of the export share one
    REPEATABLE READ snapshot, so the file and its fingerprint are those of one moment whatever
    the pace (a slower pace holds that snapshot longer: about 3 s per 250,000-row day at the
    default); the chunks return the rows in the order one scan does, so the file is
    byte-identical to an unpaced export's."""
    folder = store.unit_dir(root, table, day)
    entries = []
    if pacer.progress is not None:
        pacer.progress.stage("export", expected_rows)
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        parquet_io.stable_text(cur)
        exported = {}
        for member, source in sources.items():
            columns = parquet_io.table_columns(cur, member)
            rows = parquet_io.export_rows(cur, source, columns, pacer)
            exported[member] = (columns, rows, parquet_io.fingerprint(cur, source, pacer))
    conn.commit()
    _step("after_export")
    store.make_unit_dir(root, table, day)
    generation = previous.generation + 1 if previous is not None else 1
    for member, (columns, rows, fp) in exported.items():
        name = store.data_file_name(table, day, member, generation)
        digest, size = parquet_io.write_parquet(rows, folder / name)
        entries.append(store.FileEntry(member, name, rows.num_rows, digest, size, fp,
                                       [{"name": c.name, "pg_type": c.pg_type} for c in columns]))
    _step("after_write")
    if pacer.progress is not None:
        pacer.progress.stage("verify", sum(e.rows for e in entries))
    for entry in entries:
        back = parquet_io.read_parquet(folder / entry.file, entry.sha256, entry.rows, pacer)
        with conn.cursor() as cur:
            columns = parquet_io.table_columns(cur, entry.table)
            check = create_temp_like(cur, "check", entry.table)
            parquet_io.load_rows(cur, back, check, columns, pacer)
            loaded = parquet_io.fingerprint(cur, check, pacer)
            cur.execute(sql.SQL("DROP TABLE {}").format(check))
        conn.commit()
        if loaded != entry.content_checksum:
            raise ArchiveFileError(
                f"archive of {entry.table} {day} does not read back equal ({loaded} != "
                f"{entry.content_checksum}); nothing was removed")
    manifest = store.Manifest(table, day, days, entries, generation=generation)
    store.write_manifest(root, manifest)
    store.remove_unreferenced(root, manifest)
    return manifest


def archive_day(url: str, root: Path, table: str, day: date, days: int,
                today: date | None = None, lock_wait_s: float = LOCK_WAIT_S,
                progress: Progress | None = None) -> DayResult:
    """Archives ``table``'s UTC ``day`` (past its ``days`` of retention) into ``root``; waits up
    to ``lock_wait_s`` for another archival or restore of the same day to finish. ``progress``
    is told of the rows exported, then of the rows verified."""
    spec = table_spec(table)
    ensure_past_retention(table, day, days, today)
    pacer = pace()
    pacer.progress = progress
    started = time.monotonic()
    store.remove_stale_temporaries(root, table, day)
    with connect(url) as conn, connect(url, autocommit=True) as ddl:
        lowered = yield_cpu_to_writers(conn)
        lock_unit(conn, table, day, lock_wait_s)
        with conn.cursor() as cur:
            held = store.active_hold(cur, table, day)
        conn.commit()
        if held is not None:
            return DayResult(table, day, "held", notes=[f"restored day held until {held.isoformat()}"])
        if spec.partitioned:
            result = _archive_partition(conn, ddl, root, table, day, days, pacer)
        else:
            result = _archive_rows(conn, root, table, day, days, pacer)
    result.seconds = time.monotonic() - started
    result.paused_s = pacer.slept
    if not lowered.get("backend"):
        result.notes.append("the archiver's PostgreSQL backend kept its CPU priority (remote server or no permission)")
    return result


def _finish(conn, table: str, day: date, manifest: store.Manifest, root: Path, remove_ms: float) -> DayResult:
    with conn.cursor() as cur:
        store.set_ledger(cur, table, day, "archived", row_count=manifest.rows,
                         content_checksum=manifest.files[0].content_checksum,
                         manifest_path=str(store.manifest_path(root, table, day).relative_to(root)),
                         file_bytes=sum(f.bytes for f in manifest.files),
                         retention_days=manifest.retention_days, remove_ms=remove_ms)
        cur.execute("UPDATE fleet.archive_ledger SET archived_at = now() WHERE table_name = %s AND day = %s",
                    (table, day))
        store.release_hold(cur, table, day)
    conn.commit()
    return DayResult(table, day, "archived", rows=manifest.rows,
                     file_bytes=sum(f.bytes for f in manifest.files), remove_ms=remove_ms,
                     manifest=str(store.manifest_path(root, table, day)))


def _archive_partition(conn, ddl, root: Path, table: str, day: date, days: int,
                       pacer: parquet_io.Pacer) -> DayResult:
    with conn.cursor() as cur:
        state = partition_state(cur, table, day)
        status = store.ledger_status(cur, table, day)
    conn.commit()
    if state == "missing":
        manifest = _valid_manifest(root, table, day)
        if manifest is not None and status != "archived":   # killed after DROP, before the ledger
            return _finish(conn, table, day, manifest, root, 0.0)
        outcome = "already_archived" if manifest is not None else "no_data"
        return DayResult(table, day, outcome, rows=manifest.rows if manifest else 0)
    if state == "detach_pending":
        detach_concurrently(ddl, table, day)
    if state == "attached":
        # From here on a late insert into this old day fails loudly instead of slipping in
        # between the export and the detach (the partition only: writers of today never wait).
        freeze_partition(conn, table, day)
        _step("after_freeze")
    rel = partition_ident(table, day)
    previous = _previous_archive(root, table, day)
    manifest = previous
    if status != "verified" or previous is None:   # 'verified' is only ever set on a frozen partition
        with conn.cursor() as cur:
            store.set_ledger(cur, table, day, "exporting", retention_days=days)
        source: sql.Composable = rel
        if previous is not None:
            # Archived before (then restored, or rows came back): the new file keeps every
            # earlier row, whatever happened to them in PostgreSQL since.
            with conn.cursor() as cur:
                parquet_io.stable_text(cur)
                source = create_temp_like(cur, "rows", table)
                cur.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(source, rel))
                _merge_previous(cur, root, previous, [table])
        with conn.cursor() as cur:
            estimate = _estimated_rows(cur, source)
        conn.commit()
        manifest = _write_unit(conn, root, table, day, days, {table: source}, previous, pacer, estimate)
        with conn.cursor() as cur:
            store.set_ledger(cur, table, day, "verified", row_count=manifest.rows,
                             content_checksum=manifest.files[0].content_checksum)
        conn.commit()
        _step("after_verify")
    t0 = time.perf_counter()
    detach_concurrently(ddl, table, day)
    detach_ms = (time.perf_counter() - t0) * 1000
    _step("after_detach")
    t0 = time.perf_counter()
    drop_detached(conn, table, day)
    drop_ms = (time.perf_counter() - t0) * 1000
    result = _finish(conn, table, day, manifest, root, detach_ms + drop_ms)
    result.drop_ms = drop_ms
    return result


def _archive_rows(conn, root: Path, table: str, day: date, days: int, pacer: parquet_io.Pacer) -> DayResult:
    spec = table_spec(table)
    members = [table, *(c.table for c in spec.children)]
    previous = _previous_archive(root, table, day)
    with conn.cursor() as cur:
        cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        # The day's rows as of one snapshot, with where they live, so that the delete removes
        # exactly those (a row changed since then no longer matches and stays).
        for member in members:
            create_temp_like(cur, "rows", member)
            ids = sql.Identifier(f"retention_ids_{member}")
            cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(ids))
            cur.execute(sql.SQL("CREATE TEMP TABLE {} (row_ctid tid, row_text text)").format(ids))
        parquet_io.stable_text(cur)
        _capture(cur, spec, day)
        if previous is not None:
            _merge_previous(cur, root, previous, members)
    conn.commit()
    rows_tables = {m: sql.Identifier(f"retention_rows_{m}") for m in members}
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*) FROM {}").format(rows_tables[table]))
        total = cur.fetchone()[0]
    conn.commit()
    if total == 0:
        outcome = "already_archived" if previous is not None else "no_data"
        return DayResult(table, day, outcome, rows=previous.rows if previous else 0)
    with conn.cursor() as cur:
        store.set_ledger(cur, table, day, "exporting", retention_days=days)
    conn.commit()
    manifest = _write_unit(conn, root, table, day, days, rows_tables, previous, pacer, total)
    with conn.cursor() as cur:
        store.set_ledger(cur, table, day, "verified", row_count=manifest.rows,
                         content_checksum=manifest.files[0].content_checksum)
    conn.commit()
    _step("after_verify")
    t0 = time.perf_counter()
    for member in reversed(members):            # dependent rows first: foreign keys hold
        _delete_captured(conn, member)
    return _finish(conn, table, day, manifest, root, (time.perf_counter() - t0) * 1000)


def _estimated_rows(cur, relation: sql.Composable) -> int | None:
    """The planner's row estimate of ``relation`` (free: no scan), None when it has none; only
    a progress bar's total, so an estimate is enough."""
    cur.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                (relation.as_string(cur.connection),))
    row = cur.fetchone()
    return int(row[0]) if row and row[0] > 0 else None


def _capture(cur, spec, day: date) -> None:
    rows = sql.Identifier(f"retention_rows_{spec.name}")
    ids = sql.Identifier(f"retention_ids_{spec.name}")
    src = sql.Identifier("fleet", spec.name)
    cur.execute(sql.SQL("INSERT INTO {} SELECT t.* FROM {} t WHERE {}").format(rows, src, day_filter(spec, day)))
    cur.execute(sql.SQL("INSERT INTO {} SELECT t.ctid, t::text FROM {} t WHERE {}").format(
        ids, src, day_filter(spec, day)))
    for child in spec.children:
        crow = sql.Identifier(f"retention_rows_{child.table}")
        cids = sql.Identifier(f"retention_ids_{child.table}")
        csrc = sql.Identifier("fleet", child.table)
        cond = sql.SQL("c.{} IN (SELECT p.{} FROM {} p)").format(
            sql.Identifier(child.fk_column), sql.Identifier(child.parent_column), rows)
        cur.execute(sql.SQL("INSERT INTO {} SELECT c.* FROM {} c WHERE {}").format(crow, csrc, cond))
        cur.execute(sql.SQL("INSERT INTO {} SELECT c.ctid, c::text FROM {} c WHERE {}").format(cids, csrc, cond))


def _merge_previous(cur, root: Path, previous: store.Manifest, members: list[str]) -> None:
    """Adds the rows of the day's earlier archive that PostgreSQL no longer holds."""
    folder = store.unit_dir(root, previous.table, previous.day)
    for member in members:
        entry = previous.entry(member)
        if entry is None:
            continue
        back = parquet_io.read_parquet(folder / entry.file, entry.sha256, entry.rows)
        prev = create_temp_like(cur, "prev", member)
        parquet_io.load_rows(cur, back, prev, parquet_io.table_columns(cur, member))
        rows = sql.Identifier(f"retention_rows_{member}")
        cur.execute(sql.SQL(
            "INSERT INTO {rows} SELECT p.* FROM {prev} p WHERE p::text NOT IN (SELECT r::text FROM {rows} r)"
        ).format(rows=rows, prev=prev))
        cur.execute(sql.SQL("DROP TABLE {}").format(prev))


def _delete_captured(conn, member: str) -> None:
    ids = sql.Identifier(f"retention_ids_{member}")
    target = sql.Identifier("fleet", member)
    while True:
        with conn.cursor() as cur:
            cur.execute("SET LOCAL lock_timeout = '2s'")
            parquet_io.stable_text(cur)
            cur.execute(sql.SQL(
                """WITH batch AS (
                       DELETE FROM {ids} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {ids} LIMIT %s))
                       RETURNING row_ctid, row_text)
                   DELETE FROM {target} t
                   WHERE t.ctid = ANY (ARRAY(SELECT row_ctid FROM batch))
                     AND t::text IN (SELECT row_text FROM batch)""").format(ids=ids, target=target),
                (DELETE_BATCH,))
            cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(ids))
            more = cur.fetchone()[0]
        conn.commit()
        _step("during_delete")
        if not more:
            return
