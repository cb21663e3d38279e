"""The batch engine: convert a bounded batch, COPY it, keep its rejects, advance the resume
point, all in one PostgreSQL transaction.

A batch is a range of SQLite rowids. Its rows, its rejects and the progress row that says
"everything up to rowid N is done" commit together, so a process killed at any instant leaves
either the whole batch or none of it, and the next run starts after the last committed rowid.
"""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta

from psycopg2 import sql
from psycopg2.extras import execute_values

from agents_pipeline.defs.migration import fastpath
from agents_pipeline.defs.migration.copydata import COPY_OPTIONS, Batch, csv_bytes
from agents_pipeline.defs.migration.digest import digester
from agents_pipeline.defs.migration.parts import Part
from agents_pipeline.defs.migration.source import LegacySource
from agents_pipeline.defs.migration.tables import Context, TableSpec
from agents_pipeline.defs.migration.values import Reject, escape_original, oversize_reason, parse_oversize

KILL_ENV = "AGENTS_PIPELINE_MIGRATION_KILL_AT"  # test hook: "<point>:<table>:<batch>"


def kill_point(point: str, table: str, batch: int) -> None:
    """Dies with SIGKILL at a named point when the test hook asks for it (never in production)."""
    if os.environ.get(KILL_ENV) == f"{point}:{table}:{batch}":
        if os.environ.get("AGENTS_PIPELINE_MIGRATION_WORKER"):  # a worker: the whole migration dies
            os.kill(os.getppid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class TableCounts:
    read: int = 0
    written: int = 0
    rejected: int = 0
    batches: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    @classmethod
    def merged(cls, parts: list[TableCounts], side_by_side: bool = False) -> TableCounts:
        """One table's counts from those of its ranges (parts.py), loaded one after the other
        or side by side (then its seconds are the longest range's)."""
        seconds = [p.seconds for p in parts]
        out = cls(seconds=max(seconds, default=0.0) if side_by_side else sum(seconds))
        for p in parts:
            out.read += p.read
            out.written += p.written
            out.rejected += p.rejected
            out.batches += p.batches
            for reason, n in p.reasons.items():
                out.reasons[reason] = out.reasons.get(reason, 0) + n
        return out


def _day_runs(days: set[date]) -> list[tuple[date, date]]:
    runs: list[tuple[date, date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][1] == timedelta(days=1) and (day - runs[-1][0]).days < 3000:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


# Retried: a lock timeout behind a long writer; another session (a range of the same table
# loading side by side, the partition maintenance) creating the same day first, which
# ensure_partitions' check-then-create reports as a duplicate table, an overlapping partition
# or a duplicate catalog row. The retry then finds the partition there.
_RETRY = {"55P03": 1.0, "42P07": 0.05, "42P17": 0.05, "23505": 0.05}


def ensure_partitions(conn, table: str, days: set[date]) -> None:
    """Creates the daily partitions first, in short transactions of their own, so the DDL's
    lock on the parent is never held across a long COPY."""
    for first, last in _day_runs(days):
        for attempt in range(5):
            try:
                with conn, conn.cursor() as cur:
                    cur.execute("SET LOCAL lock_timeout = '5s'")
                    cur.execute("SELECT fleet.ensure_partitions(%s, %s, %s)", (table, first, last))
                break
            except Exception as exc:
                pause = _RETRY.get(getattr(exc, "pgcode", None) or "")
                if pause is None or attempt == 4:
                    raise
                time.sleep(pause * (1 + attempt))


class TableLoader:
    """Moves one legacy table, batch by batch, from its resume point.

    A reader thread fetches and converts the next batch (Python, holding the GIL) while this
    thread streams the previous one into COPY (libpq, GIL released): on two cores the
    conversion and PostgreSQL's ingest overlap instead of taking turns. At most two converted
    batches wait in the queue, so memory stays bounded by the batch size.
    """

    def __init__(self, conn, source: LegacySource, spec: TableSpec, ctx: Context, batch_size: int,
                 dry_run: bool, progress: Callable[[str, int], None] | None = None, part: Part | None = None) -> None:
        self.conn, self.source, self.spec, self.ctx = conn, source, spec, ctx
        self.part = part or Part(spec.legacy)   # the rowid range this loader moves (parts.py)
        self.progress = progress or (lambda _table, _rows: None)
        self.batch_size = max(1, batch_size // spec.batch_divisor)
        self.dry_run = dry_run
        self.counts = TableCounts()
        self._digest_at = [spec.targets.index(col) for col, _ in spec.digest]
        self._digest = digester(("int", *(kind for _, kind in spec.digest)))
        self._copy_cols = (*spec.targets, "legacy_source", "legacy_id")
        self._part_at = spec.targets.index(spec.partition) if spec.partition else None
        self._unique_at = spec.targets.index(spec.unique) if spec.unique else None

    def resume_point(self) -> int:
        if self.dry_run:
            return 0
        with self.conn, self.conn.cursor() as cur:
            cur.execute("""INSERT INTO fleet.legacy_progress (source_id, table_name, part, first_rowid, last_rowid)
                           VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING""",
                        (self.ctx.source_id, self.spec.legacy, self.part.part, self.part.first_rowid,
                         self.part.first_rowid))
            cur.execute("""SELECT last_rowid FROM fleet.legacy_progress
                           WHERE source_id = %s AND table_name = %s AND part = %s""",
                        (self.ctx.source_id, self.spec.legacy, self.part.part))
            return cur.fetchone()[0]

    def _python_batches(self, after_rowid: int) -> Iterator[Batch]:
        info = self.source.tables[self.spec.legacy]
        columns = [c if c in info.columns else None for c in self.spec.columns]
        cursor = self.source.select_capped(self.spec.legacy, columns, after_rowid=after_rowid,
                                           until_rowid=self.part.upper)
        for rows in self.source.batches(cursor, self.batch_size):
            yield self._convert(rows)

    def _batches(self) -> Iterator[Batch]:
        after = self.resume_point()
        plan = fastpath.plan_for(self.source, self.spec, self.ctx.source_id)
        if plan is None:
            return self._python_batches(after)
        reader = fastpath.FastReader(self.source, self.spec, self.ctx, plan, self._convert)
        return reader.batches(after, self.batch_size, self.part.upper)

    def run(self) -> TableCounts:
        started = time.monotonic()
        source = self._batches()
        batches: queue.Queue = queue.Queue(maxsize=2)
        stop = threading.Event()

        def produce() -> None:
            try:
                for batch in source:
                    if stop.is_set():
                        break
                    batches.put(batch)
                batches.put(None)
            except BaseException as exc:  # handed to the writer, which raises it
                batches.put(exc)

        reader = threading.Thread(target=produce, name=f"read-{self.spec.legacy}", daemon=True)
        reader.start()
        try:
            while (batch := batches.get()) is not None:
                if isinstance(batch, BaseException):
                    raise batch
                self._write(batch)
                self.progress(self.spec.legacy, batch.read)
        finally:
            stop.set()
            while reader.is_alive():  # unblock a reader waiting on a full queue
                try:
                    batches.get(timeout=0.1)
                except queue.Empty:
                    pass
        self.counts.seconds = time.monotonic() - started
        if not self.dry_run:
            with self.conn, self.conn.cursor() as cur:
                cur.execute("""UPDATE fleet.legacy_progress SET completed_at = now(), updated_at = now()
                               WHERE source_id = %s AND table_name = %s AND part = %s""",
                            (self.ctx.source_id, self.spec.legacy, self.part.part))
        return self.counts

    def _convert(self, rows: list[tuple]) -> Batch:
        """The per-value converters over raw legacy rows as ``select_capped`` reads them (rowid,
        oversize note, values): a row with a value over the size limit is rejected unread."""
        spec, ctx, digest, digest_at = self.spec, self.ctx, self._digest, self._digest_at
        good: list[tuple] = []
        digests: dict[int, int] = {}
        rejects: list[tuple[int, str, tuple]] = []
        days: set[date] = set()
        seen: set = set()
        originals: dict[int, tuple] = {}
        for row in rows:
            rowid, note, values = row[0], row[1], row[2:]
            if note:
                found = parse_oversize(note)
                values = tuple(found.get(i, v) for i, v in enumerate(values))
                originals[rowid] = values
                rejects.append((rowid, oversize_reason(spec.columns, found), values))
                continue
            originals[rowid] = values
            try:
                out = spec.convert(rowid, values, ctx)
            except Reject as exc:
                rejects.append((rowid, str(exc), values))
                continue
            if self._unique_at is not None:
                if out[self._unique_at] in seen:
                    rejects.append((rowid, spec.conflict_reason, values))
                    continue
                seen.add(out[self._unique_at])
            digests[rowid] = digest((rowid, *[out[i] for i in digest_at]))
            if self._part_at is not None:
                days.add(out[self._part_at].date())
            good.append(out + (ctx.source_id, rowid))
        return Batch(read=len(rows), last_rowid=rows[-1][0] if rows else 0, ids=[r[-1] for r in good],
                     payload=b"" if self.dry_run else csv_bytes(good), digest_total=sum(digests.values()),
                     rejects=rejects, days=days, digests=digests, originals=originals,
                     good=good if self._unique_at is not None else [])

    def _write(self, batch: Batch) -> None:
        spec, ctx = self.spec, self.ctx
        self.counts.read += batch.read
        self.counts.batches += 1
        if self.dry_run:
            self._count(len(batch.ids), batch.rejects)
            return
        if batch.days:
            ensure_partitions(self.conn, spec.target, batch.days)
        rejects, ids, payload = batch.rejects, batch.ids, batch.payload
        with self.conn, self.conn.cursor() as cur:
            if self._unique_at is not None and batch.good:
                good = batch.good
                cur.execute(sql.SQL("SELECT {col}::text FROM {t} WHERE {col} = ANY(%s::text[]::{typ}[])").format(
                    col=sql.Identifier(spec.unique), t=sql.Identifier("fleet", spec.target),
                    typ=sql.SQL(spec.unique_type)), ([str(r[self._unique_at]) for r in good],))
                taken = {v for (v,) in cur.fetchall()}
                if taken:  # already in PostgreSQL (live data, or the same row twice in the file)
                    clash = [r[-1] for r in good if str(r[self._unique_at]) in taken]
                    rejects = rejects + [(i, spec.conflict_reason, batch.originals[i]) for i in clash]
                    good = [r for r in good if str(r[self._unique_at]) not in taken]
                    ids, payload = [r[-1] for r in good], csv_bytes(good)
            written_ids = self._copy(cur, io.BytesIO(payload), ids)
            if len(written_ids) != len(ids):
                rejects = rejects + [(i, spec.conflict_reason, batch.originals[i]) for i in ids
                                     if i not in written_ids]
                checksum = sum(batch.digests[i] for i in written_ids)
            else:
                checksum = batch.digest_total if len(ids) == len(batch.ids) else sum(batch.digests[i] for i in ids)
            self._store_rejects(cur, rejects)
            cur.execute("""UPDATE fleet.legacy_progress
                           SET last_rowid = %s, rows_read = rows_read + %s, rows_written = rows_written + %s,
                               rows_rejected = rows_rejected + %s, checksum = checksum + %s, updated_at = now()
                           WHERE source_id = %s AND table_name = %s AND part = %s""",
                        (batch.last_rowid, batch.read, len(written_ids), len(rejects), checksum,
                         ctx.source_id, spec.legacy, self.part.part))
            kill_point("before_commit", spec.legacy, self.counts.batches)
        kill_point("after_commit", spec.legacy, self.counts.batches)
        self._count(len(written_ids), rejects)

    def _count(self, written: int, rejects: list[tuple[int, str, tuple]]) -> None:
        self.counts.written += written
        self.counts.rejected += len(rejects)
        for _, reason, _ in rejects:
            key = reason_key(reason)
            self.counts.reasons[key] = self.counts.reasons.get(key, 0) + 1

    def _copy(self, cur, buffer: io.BytesIO, ids: list[int]) -> set[int]:
        cols = sql.SQL(", ").join(map(sql.Identifier, self._copy_cols))
        target = sql.Identifier("fleet", self.spec.target)
        if not ids:
            return set()
        if not self.spec.staged:
            cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN WITH {}").format(target, cols, COPY_OPTIONS).as_string(cur),
                            buffer, size=256 * 1024)
            return set(ids)
        stage = sql.Identifier(f"stage_{self.spec.target}")
        cur.execute(sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} ON COMMIT DELETE ROWS AS "
                            "SELECT {} FROM {} WITH NO DATA").format(stage, cols, target))
        cur.copy_expert(sql.SQL("COPY {} ({}) FROM STDIN WITH {}").format(stage, cols, COPY_OPTIONS).as_string(cur),
                        buffer, size=256 * 1024)
        cur.execute(sql.SQL("INSERT INTO {} AS {} ({}) SELECT {} FROM {} ORDER BY legacy_id {} RETURNING legacy_id")
                    .format(target, sql.Identifier(self.spec.target), cols, cols, stage, sql.SQL(self.spec.conflict_sql)))
        return {r[0] for r in cur.fetchall()}

    def _store_rejects(self, cur, rejects: list[tuple[int, str, tuple]]) -> None:
        store_rejects(cur, self.ctx.source_id, self.spec.legacy, self.spec.columns, rejects)


def store_rejects(cur, source_id: int, table: str, columns: tuple[str, ...] | list[str],
                  rejects: list[tuple[int, str, tuple]]) -> None:
    """Keeps rejected rows in fleet.legacy_rejects: (legacy id, reason, original values)."""
    if not rejects:
        return
    rows = []
    for rowid, reason, original in rejects:
        escaped = [escape_original(v) for v in original]
        rows.append((source_id, table, rowid, reason,
                     json.dumps({n: e[0] for n, e in zip(columns, escaped, strict=True)}, ensure_ascii=False),
                     json.dumps({n: e[1] for n, e in zip(columns, escaped, strict=True)})))
    execute_values(cur, """INSERT INTO fleet.legacy_rejects (source_id, table_name, legacy_id, reason, original, types)
                           VALUES %s ON CONFLICT (source_id, table_name, legacy_id)
                           DO UPDATE SET reason = excluded.reason, original = excluded.original,
                                         types = excluded.types, rejected_at = now()""",
                   rows, template="(%s, %s, %s, %s, %s::jsonb, %s::jsonb)")


def reason_key(reason: str) -> str:
    """The reason as the report groups it: its column and its kind, without the value."""
    return reason.split(":")[0] + ": " + _reason_kind(reason) if ":" in reason else reason


def _reason_kind(reason: str) -> str:
    """The reason without its quoted value, so the report groups rejects by kind."""
    detail = reason.split(":", 1)[-1].strip()
    if "'" in detail:
        head, _, rest = detail.partition("'")
        tail = rest.rpartition("'")[2]
        return (head + "..." + tail).strip()
    return detail
