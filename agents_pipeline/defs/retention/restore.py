"""Put an archived day back into PostgreSQL, exactly, and hold it there for a while.

The files are read and checked against the manifest (sha256, page checksums, row counts)
before anything in the database changes, so a missing or corrupt archive is reported with the
database untouched. Rows go back in one transaction: a partitioned day into a new table that is
then ATTACHed (no lock that stalls writers), an unpartitioned day into its table; rows already
present (a restore repeated, or a day whose removal was interrupted) are not inserted twice.
A hold with an expiry keeps the next archival run from removing the day again at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from psycopg2 import sql

from agents_pipeline.console import Progress
from agents_pipeline.defs.retention import parquet_io, store
from agents_pipeline.defs.retention.locks import LOCK_WAIT_S, lock_unit
from agents_pipeline.defs.retention.parquet_io import ArchiveFileError
from agents_pipeline.defs.retention.partitions import (
    attach_standalone,
    create_standalone,
    detach_concurrently,
    partition_ident,
    partition_state,
    unfreeze_partition,
    with_lock_retries,
)
from agents_pipeline.defs.retention.policy import table_spec
from agents_pipeline.defs.retention.units import connect, create_temp_like, day_rows

DEFAULT_HOLD_DAYS = 7.0


@dataclass
class RestoreResult:
    table: str
    day: date
    rows_in_archive: int
    rows_inserted: int
    held_until: datetime
    exact: bool          # the day's rows in PostgreSQL have the archive's fingerprint


def read_unit(root: Path, table: str, day: date):
    """(manifest, {member: arrow table}) with every file verified; raises ArchiveFileError.

    ``store.read_manifest`` has already refused a manifest of another day or one naming
    anything but the day's own files in its folder, so nothing outside it is ever read."""
    manifest = store.read_manifest(root, table, day)
    if manifest is None:
        raise ArchiveFileError(
            f"no archive of {table} {day} in {root} (expected {store.manifest_path(root, table, day)})")
    folder = store.unit_dir(root, table, day)
    return manifest, {e.table: parquet_io.read_parquet(folder / e.file, e.sha256, e.rows) for e in manifest.files}


def _insert_missing(cur, member: str, rows, target: sql.Composable, present: sql.Composable,
                    progress: Progress | None = None) -> int:
    """Inserts the archived rows not already in ``present`` (compared by their text form)."""
    columns = parquet_io.table_columns(cur, member)
    staged = create_temp_like(cur, "restore", member)
    # Loaded in chunks (at full speed: pace 100) so that ``progress`` moves as rows go in.
    loader = parquet_io.Pacer(100)
    loader.progress = progress
    parquet_io.load_rows(cur, rows, staged, columns, loader)
    parquet_io.stable_text(cur)
    cur.execute(sql.SQL(
        "INSERT INTO {target} OVERRIDING SYSTEM VALUE SELECT s.* FROM {staged} s "
        "WHERE s::text NOT IN (SELECT p::text FROM {present} p)").format(
            target=target, staged=staged, present=present))
    inserted = cur.rowcount
    cur.execute(sql.SQL("DROP TABLE {}").format(staged))
    return inserted


def restore_day(url: str, root: Path, table: str, day: date, hold_days: float = DEFAULT_HOLD_DAYS,
                lock_wait_s: float = LOCK_WAIT_S, progress: Progress | None = None) -> RestoreResult:
    """Restores the archived day; waits up to ``lock_wait_s`` for an archival of it to finish.
    ``progress`` is told of the rows loaded (a retried attempt starts its count again)."""
    spec = table_spec(table)
    manifest, data = read_unit(root, table, day)

    def load_stage() -> Progress | None:
        if progress is not None:
            progress.stage("load", manifest.rows)
        return progress

    with connect(url) as conn, connect(url, autocommit=True) as ddl:
        lock_unit(conn, table, day, lock_wait_s)
        if spec.partitioned:
            with conn.cursor() as cur:
                state = partition_state(cur, table, day)
            conn.commit()
            if state == "detach_pending":
                detach_concurrently(ddl, table, day)

            def work(cur):
                state = partition_state(cur, table, day)
                if state == "missing":
                    create_standalone(cur, table, day)
                else:   # an archival killed midway left it frozen
                    unfreeze_partition(cur, table, day)
                part = partition_ident(table, day)
                n = _insert_missing(cur, table, data[table], part, part, load_stage())
                if state != "attached":
                    attach_standalone(cur, table, day)
                return n

            inserted = with_lock_retries(conn, work, lock_timeout_ms=100)
        else:
            def work(cur):
                n = 0
                stage = load_stage()
                for member in [table, *(c.table for c in spec.children)]:
                    target = sql.Identifier("fleet", member)
                    present = day_rows(spec, day) if member == table else target
                    n += _insert_missing(cur, member, data[member], target, present, stage) if member in data else 0
                return n

            inserted = with_lock_retries(conn, work, lock_timeout_ms=2000)
        with conn.cursor() as cur:
            now_fp = parquet_io.fingerprint(cur, day_rows(spec, day))
            held = store.hold_day(cur, table, day, hold_days, "restored by archive restore")
            store.set_ledger(cur, table, day, "restored", row_count=manifest.rows,
                             content_checksum=manifest.files[0].content_checksum)
            cur.execute("UPDATE fleet.archive_ledger SET restored_at = now() WHERE table_name = %s AND day = %s",
                        (table, day))
        conn.commit()
    return RestoreResult(table, day, manifest.rows, inserted, held,
                         exact=now_fp == manifest.files[0].content_checksum)
