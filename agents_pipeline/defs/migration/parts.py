"""Rowid ranges of one legacy table, loaded side by side, each with its own resume point.

One worker per table leaves the biggest table (heartbeats, in every fleet) loading alone at the
end while the other workers have finished, and caps the migration at three busy pipelines
however many cores there are. A table loaded by plain COPY (no staging, no unique check: the
two history tables) can therefore be split into ranges of about ``PART_ROWS`` rows where cores
would otherwise idle (``ranges_wanted``), each loaded by its own worker into its own
``fleet.legacy_progress`` row (``part``, ``first_rowid``). The first run that loads a table
fixes its split; every later run, killed or not, side by side or in one process, continues the
same ranges, so a resume point never skips or repeats a row. Each range is verified on its own; together they cover every rowid once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from agents_pipeline.defs.migration.session import MigrationError
from agents_pipeline.defs.migration.source import FIRST_ROWID, LAST_ROWID, LegacySource, qident
from agents_pipeline.defs.migration.tables import KNOWN

PART_ROWS = 750_000    # of heartbeats: about 4 CPU-s in a worker and 3 in its PostgreSQL backend (benchmark file)
PART_ROWS_ENV = "AGENTS_PIPELINE_MIGRATION_PART_ROWS"
MAX_WORKERS = 5   # side-by-side processes in all: each holds ~40 MB and two batches (the 512 MB bound)


@dataclass(frozen=True)
class Part:
    """Rows ``first_rowid < rowid <= until_rowid`` of ``table`` (``until_rowid`` None: no end).
    Part 0 starts before SQLite's smallest rowid: a legacy file may hold rowids <= 0."""

    table: str
    part: int = 0
    first_rowid: int = FIRST_ROWID
    until_rowid: int | None = None

    @property
    def lower(self) -> int | None:
        """The range's lower bound for counting: none for part 0, which also holds any row
        whose rowid is at or below its first resume point."""
        return None if self.part == 0 else self.first_rowid

    @property
    def upper(self) -> int:
        """The range's last rowid for reading: SQLite's largest for a range without an end."""
        return LAST_ROWID if self.until_rowid is None else self.until_rowid

    @property
    def label(self) -> str:
        return self.table if self.part == 0 and self.until_rowid is None else f"{self.table} part {self.part + 1}"


def splittable(table: str) -> bool:
    spec = KNOWN.get(table)
    return spec is not None and not spec.staged and spec.unique is None


def part_rows() -> int | None:
    """Rows per range as ``AGENTS_PIPELINE_MIGRATION_PART_ROWS`` sets them, or None (unset)."""
    raw = os.environ.get(PART_ROWS_ENV, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise MigrationError(f"{PART_ROWS_ENV} must be a whole number of rows (at least 1), got {raw!r}")
    return int(raw)


def _rowids(source: LegacySource, table: str) -> tuple[int, int] | None:
    """The table's smallest and largest rowid (of the file's own table under a mapping's view),
    one aggregate a statement: each is then one lookup, where both in one statement read the
    whole table."""
    name = "main." + qident(source.mapped_from.get(table, table))   # never a mapping's temp view
    lo, hi = (source.execute(f"SELECT {f}(rowid) FROM {name}").fetchone()[0]  # noqa: S608 - quoted
              for f in ("min", "max"))
    return None if lo is None else (lo, hi)


def ranges_wanted(source: LegacySource, tables: list[str], cores: int | None = None) -> dict[str, int]:
    """How many ranges each of the tables loading side by side gets: about PART_ROWS rows each,
    from the cores the whole tables leave idle, biggest table first, and never more than
    MAX_WORKERS processes in all. On 2 cores the three tables already keep both busy, and
    splitting measured slower (more processes, a verification scan per range: 25.2 s against
    24.4 s for the benchmark's clean file), so a table is split only where cores would idle, or
    when ``AGENTS_PIPELINE_MIGRATION_PART_ROWS`` asks for it (whatever the cores)."""
    cores = cores or os.cpu_count() or 1
    explicit = part_rows()
    spans = {t: _rowids(source, t) for t in tables if splittable(t)}
    rows = {t: span[1] - span[0] + 1 for t, span in spans.items() if span is not None}
    spare = max(0, (MAX_WORKERS if explicit else min(cores, MAX_WORKERS)) - len(tables))   # more workers
    out = {t: 1 for t in tables}
    for table in sorted(rows, key=rows.__getitem__, reverse=True):
        extra = min(spare, max(0, round(rows[table] / (explicit or PART_ROWS)) - 1))
        out[table] += extra
        spare -= extra
    return out


def plan(conn, source: LegacySource, source_id: int, table: str, ranges: int = 1) -> list[Part]:
    """The table's ranges: those an earlier run fixed, or (``ranges`` > 1 and none yet) a new
    split of its rowids, recorded before any of them loads. Else the whole table as part 0."""
    with conn, conn.cursor() as cur:
        cur.execute("""SELECT part, first_rowid FROM fleet.legacy_progress
                       WHERE source_id = %s AND table_name = %s ORDER BY part""", (source_id, table))
        known = cur.fetchall()
        span = _rowids(source, table) if not known and ranges > 1 and splittable(table) else None
        if span is not None:
            lo, hi = span
            n = min(ranges, hi - lo + 1)
            starts = [FIRST_ROWID] + [lo - 1 + k * (hi - lo + 1) // n for k in range(1, n)]
            cur.execute("""INSERT INTO fleet.legacy_progress (source_id, table_name, part, first_rowid, last_rowid)
                           SELECT %s, %s, p - 1, s, s FROM unnest(%s::bigint[]) WITH ORDINALITY AS u(s, p)""",
                        (source_id, table, starts))
            known = list(enumerate(starts))
    if not known:
        return [Part(table)]
    return [Part(table, part, first, known[i + 1][1] if i + 1 < len(known) else None)
            for i, (part, first) in enumerate(known)]
