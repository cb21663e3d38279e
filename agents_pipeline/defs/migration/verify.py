"""Verification after the copy: counts re-read on both sides, checksums recomputed by SQL.

Nothing here trusts the loader's own counters alone. The SQLite count comes from the same
snapshot the rows were read from; the written count and the digest sum come from SQL over the
rows PostgreSQL committed; the rejected count from the rejects table. A table verifies when
source = read = written + rejected and the digest PostgreSQL computes equals the one the
converter recorded batch by batch (in the progress row, so resumed runs verify too).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from psycopg2 import sql

from agents_pipeline.defs.migration.digest import sum_sql
from agents_pipeline.defs.migration.parts import Part
from agents_pipeline.defs.migration.report import TableReport
from agents_pipeline.defs.migration.source import LegacySource, range_conditions
from agents_pipeline.defs.migration.tables import KNOWN, TableSpec

PARALLEL_WORKERS = max(1, min(4, (os.cpu_count() or 2) // 2))


def verify_tables(url: str, source: LegacySource, rows: list[TableReport], source_id: int,
                  connect: Callable[[str], Any]) -> None:
    """Verifies each migrated table; the PostgreSQL side (a scan and a digest over every
    committed row) of up to three tables at once, each on its own connection, so the scans
    use the cores the loading used. SQLite's counts come first, from the one snapshot."""
    todo = [row for row in rows if row.status == "migrated"]
    for row in todo:
        row.source_rows = source.count(row.table)

    def check(row: TableReport) -> None:
        conn = connect(url)
        try:
            verify_table(conn, KNOWN[row.table], source_id, row)
        finally:
            conn.close()

    workers = max(1, min(3, len(todo), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="verify") as pool:
        for future in [pool.submit(check, row) for row in todo]:
            future.result()


def _in_range(part: Part | None) -> tuple[sql.Composable, tuple]:
    """The condition on legacy_id (the SQLite rowid) that keeps one range of a split table."""
    if part is None:
        return sql.SQL(""), ()
    where, values = range_conditions("legacy_id", "%s", part.lower, part.until_rowid)
    return sql.SQL("".join(f" AND {cond}" for cond in where)), values


def committed(cur, spec: TableSpec, source_id: int, part: Part | None = None) -> tuple[int, int]:
    """(rows, digest sum) over the rows of ``source_id`` PostgreSQL committed to the table (or
    to one range of it): the scan that dominates verification's cost."""
    digest = sum_sql((("legacy_id", "int"), *spec.digest))
    # One parallel worker per two cores: on 2 cores one worker finishes the scan as soon as two
    # (1.3 s for 1.5 M heartbeats) with 15 % less CPU, which the tables still loading need.
    cur.execute("SELECT set_config('max_parallel_workers_per_gather', %s, true)", (str(PARALLEL_WORKERS),))
    within, bounds = _in_range(part)
    cur.execute(sql.SQL("SELECT count(*), {} FROM {} WHERE legacy_source = %s AND legacy_id IS NOT NULL{}")
                .format(digest, sql.Identifier("fleet", spec.target), within), (source_id, *bounds))
    written, pg_digest = cur.fetchone()
    return written, int(pg_digest)


def verify_table(conn, spec: TableSpec, source_id: int, row: TableReport, part: Part | None = None) -> None:
    """Compares ``row.source_rows`` (set by the caller from the snapshot) with what PostgreSQL
    committed and with the progress the batches recorded: of the whole table, or of one range
    of a split table (``part``; the ranges cover every rowid once, so the table verifies when
    each of them does)."""
    within, bounds = _in_range(part)
    with conn, conn.cursor() as cur:
        written, pg_digest = committed(cur, spec, source_id, part)
        cur.execute(sql.SQL("SELECT count(*) FROM fleet.legacy_rejects WHERE source_id = %s AND table_name = %s{}")
                    .format(within), (source_id, spec.legacy, *bounds))
        rejected = cur.fetchone()[0]
        cur.execute(sql.SQL("""SELECT coalesce(sum(rows_read), 0)::bigint, coalesce(sum(rows_written), 0)::bigint,
                                      coalesce(sum(rows_rejected), 0)::bigint, coalesce(sum(checksum), 0)
                               FROM fleet.legacy_progress WHERE source_id = %s AND table_name = %s{}""")
                    .format(sql.SQL("") if part is None else sql.SQL(" AND part = %s")),
                    (source_id, spec.legacy, *(() if part is None else (part.part,))))
        read, progress_written, progress_rejected, expected = cur.fetchone()
    row.read, row.written, row.rejected = read, written, rejected
    row.checksum_ok = pg_digest == int(expected)
    problems = []
    if row.source_rows != read:
        problems.append(f"{row.source_rows} rows in SQLite but {read} read")
    if written + rejected != read:
        problems.append(f"{read} read but {written} written + {rejected} rejected")
    if written != progress_written or rejected != progress_rejected:
        problems.append(f"PostgreSQL holds {written} written / {rejected} rejected, the batches committed "
                        f"{progress_written} / {progress_rejected}")
    if not row.checksum_ok:
        problems.append("checksum over the committed rows differs from the converted rows")
    row.verified = not problems
    row.notes.extend(f"VERIFY: {p}" for p in problems)


def merged(results: list[tuple[str, dict]]) -> dict:
    """One table's verification from its ranges' (label, fields as ``VERIFIED_FIELDS``): the
    counts summed, verified only if every range is, each range's notes named by its label."""
    if len(results) == 1:
        return results[0][1]
    out: dict = {name: sum(r[name] for _, r in results) for name in ("source_rows", "read", "written", "rejected")}
    out["checksum_ok"] = all(r["checksum_ok"] for _, r in results)
    out["verified"] = all(r["verified"] for _, r in results)
    out["notes"] = [f"{label}: {note}" for label, r in results for note in r["notes"]]
    return out
