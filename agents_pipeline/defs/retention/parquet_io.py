"""Rows between PostgreSQL and Parquet, both ways, by COPY in CSV (set-based, no row loops).

Columns keep a native Arrow type where one is exact (integers, floats, booleans, text,
timestamptz as microseconds in UTC); any other type (jsonb, uuid, numeric, arrays) travels as
PostgreSQL's own text form, which its input function reads back to the same value. Each
column's PostgreSQL type is kept in the Parquet field metadata. Exactness is not assumed: the
archiver compares fleet.row_fingerprint over the source rows and over the file loaded back.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg2 import sql

from agents_pipeline.console import Progress
from agents_pipeline.core.errors import ValidationError
from agents_pipeline.defs.retention.private import open_private

_ARROW_TYPES = {
    "bigint": pa.int64(), "integer": pa.int32(), "smallint": pa.int16(),
    "double precision": pa.float64(), "real": pa.float32(), "boolean": pa.bool_(), "text": pa.string(),
}
_TIMESTAMPTZ = "timestamp with time zone"
FORMAT_VERSION = 1
CHUNK_BLOCKS = 16           # heap pages (128 kB, some 1,800 heartbeats) per paced query
LOAD_CHUNK_ROWS = 2048      # rows per paced COPY into PostgreSQL or batch read from Parquet


class ArchiveFileError(ValidationError):
    """An archive file is missing, corrupt, or does not match its manifest."""


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str

    @property
    def arrow_type(self) -> pa.DataType:
        if self.pg_type == _TIMESTAMPTZ:
            return pa.timestamp("us", tz="UTC")
        return _ARROW_TYPES.get(self.pg_type, pa.string())


class Pacer:
    """Autovacuum's cost-based delay, with the cost measured as time: the work is done in
    chunks, and after each the caller sleeps so that working takes at most ``percent`` % of the
    wall-clock time (50: it sleeps as long as the chunk took). A chunk slowed down by busier
    processes (the writers preempt a reniced archiver) earns a longer pause, so the pace
    follows the machine's load. 100 chunks the work without sleeping."""

    def __init__(self, percent: int) -> None:
        if not 1 <= percent <= 100:
            raise ValueError(f"pace must be a percentage from 1 to 100, not {percent}")
        self.percent = percent
        self.chunks = 0
        self.worked = 0.0
        self.slept = 0.0
        self.progress: Progress | None = None   # told of the rows each chunk moved

    def advance(self, rows: int) -> None:
        if self.progress is not None:
            self.progress.update(rows)

    @contextmanager
    def chunk(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        took = time.perf_counter() - started
        self.chunks += 1
        self.worked += took
        if self.percent < 100:
            pause = took * (100 - self.percent) / self.percent
            time.sleep(pause)
            self.slept += pause


def block_ranges(cur, relation: sql.Composable, chunk_blocks: int | None = None) -> list[sql.Composable]:
    """``t.ctid`` conditions splitting ``relation`` into runs of ``chunk_blocks`` heap pages, in
    physical order (each a TID range scan: together they return the rows a sequential scan
    does, in the same order). The last range is open-ended, so a row the caller's snapshot
    sees is never beyond it."""
    cur.execute("SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::bigint",
                (relation.as_string(cur.connection),))
    blocks = cur.fetchone()[0]
    starts = list(range(0, max(blocks, 1), chunk_blocks or CHUNK_BLOCKS))
    ranges: list[sql.Composable] = []
    for i, lo in enumerate(starts):
        cond = sql.SQL("t.ctid >= {}::tid").format(sql.Literal(f"({lo},0)"))
        if i + 1 < len(starts):
            cond = sql.SQL("{} AND t.ctid < {}::tid").format(cond, sql.Literal(f"({starts[i + 1]},0)"))
        ranges.append(cond)
    return ranges


def table_columns(cur, table: str) -> list[Column]:
    """The live columns of fleet.<table> in order, with their SQL types."""
    cur.execute(
        """SELECT a.attname, format_type(a.atttypid, a.atttypmod)
           FROM pg_attribute a
           WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
           ORDER BY a.attnum""",
        (f"fleet.{table}",),
    )
    return [Column(name, pg_type) for name, pg_type in cur.fetchall()]


def _export_expr(col: Column) -> sql.Composable:
    ident = sql.Identifier(col.name)
    if col.pg_type == _TIMESTAMPTZ:
        return sql.SQL("(extract(epoch FROM {0}) * 1000000)::bigint AS {0}").format(ident)
    if col.pg_type in _ARROW_TYPES:
        return ident
    return sql.SQL("{0}::text AS {0}").format(ident)


def schema_for(columns: list[Column]) -> pa.Schema:
    return pa.schema([
        pa.field(c.name, c.arrow_type, metadata={"pg_type": c.pg_type}) for c in columns
    ], metadata={"agents_pipeline_archive_format": str(FORMAT_VERSION)})


def export_rows(cur, source: sql.Composable, columns: list[Column], pace: Pacer | None = None) -> pa.Table:
    """The rows of ``source`` (a relation or parenthesised query) as an Arrow table; with
    ``pace`` (``source`` then a relation), read and parsed in paced chunks of heap pages on
    one thread, the same rows in the same order. In a REPEATABLE READ transaction the chunks
    see one snapshot."""
    select = sql.SQL(", ").join(_export_expr(c) for c in columns)
    if pace is None:
        queries = [sql.SQL("COPY (SELECT {} FROM {} t) TO STDOUT WITH (FORMAT csv)").format(select, source)]
    else:
        queries = [sql.SQL("COPY (SELECT {} FROM {} t WHERE {}) TO STDOUT WITH (FORMAT csv)").format(select, source, cond)
                   for cond in block_ranges(cur, source)]
    read_types = {c.name: (pa.int64() if c.pg_type == _TIMESTAMPTZ else c.arrow_type) for c in columns}
    parts = []
    for query in queries:
        with pace.chunk() if pace is not None else nullcontext():
            buf = io.BytesIO()
            cur.copy_expert(query.as_string(cur.connection), buf)
            if buf.tell() == 0:
                continue
            buf.seek(0)
            parts.append(pacsv.read_csv(
                buf,
                read_options=pacsv.ReadOptions(column_names=[c.name for c in columns], block_size=1 << 24,
                                               use_threads=pace is None),
                parse_options=pacsv.ParseOptions(newlines_in_values=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=read_types, strings_can_be_null=True, quoted_strings_can_be_null=False,
                    null_values=[""], true_values=["t"], false_values=["f"]),
            ))
            if pace is not None:
                pace.advance(parts[-1].num_rows)
    if not parts:
        arrays = [pa.array([], type=c.arrow_type) for c in columns]
        return pa.Table.from_arrays(arrays, schema=schema_for(columns))
    raw = pa.concat_tables(parts)
    arrays = [raw.column(c.name).cast(c.arrow_type) if c.pg_type == _TIMESTAMPTZ else raw.column(c.name)
              for c in columns]
    return pa.Table.from_arrays(arrays, schema=schema_for(columns))


def load_rows(cur, table: pa.Table, target: sql.Composable, columns: list[Column],
              pace: Pacer | None = None) -> int:
    """COPY an Arrow table (as read from an archive) into ``target``; returns the row count.
    With ``pace``, in paced COPYs of ``LOAD_CHUNK_ROWS`` rows."""
    if table.num_rows == 0:
        return 0
    ordered = table.select([c.name for c in columns])
    # Written as UTC wall-clock time without a zone (30x faster to format than a zoned one)
    # and read by a session whose TimeZone is UTC.
    for i, field in enumerate(ordered.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            ordered = ordered.set_column(i, field.name, ordered.column(i).cast(pa.timestamp(field.type.unit)))
    stable_text(cur)
    query = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        target, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)).as_string(cur.connection)
    step = ordered.num_rows if pace is None else LOAD_CHUNK_ROWS
    for start in range(0, ordered.num_rows, step):
        with pace.chunk() if pace is not None else nullcontext():
            buf = io.BytesIO()
            chunk = ordered.slice(start, step)
            pacsv.write_csv(chunk, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            buf.seek(0)
            cur.copy_expert(query, buf)
        if pace is not None:
            pace.advance(chunk.num_rows)
    return table.num_rows


def stable_text(cur) -> None:
    """Session settings under which a row's text form is the same in every process."""
    cur.execute("SET LOCAL TimeZone = 'UTC'")
    cur.execute("SET LOCAL extra_float_digits = 1")
    cur.execute("SET LOCAL DateStyle = 'ISO, YMD'")
    cur.execute("SET LOCAL IntervalStyle = 'postgres'")


def fingerprint(cur, source: sql.Composable, pace: Pacer | None = None) -> str:
    """``rows:sum`` over fleet.row_fingerprint of each row's text form (UTC, exact floats).
    With ``pace`` (``source`` then a relation), summed over paced chunks of heap pages."""
    stable_text(cur)
    query = sql.SQL("SELECT count(*), coalesce(sum(fleet.row_fingerprint(t::text)), 0) FROM {} t").format(source)
    if pace is None:
        cur.execute(query)
        rows, total = cur.fetchone()
        return f"{rows}:{total}"
    rows, total = 0, 0
    for cond in block_ranges(cur, source):
        with pace.chunk():
            cur.execute(sql.SQL("{} WHERE {}").format(query, cond))
            n, part = cur.fetchone()
        rows, total = rows + n, total + int(part)
    return f"{rows}:{total}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_parquet(table: pa.Table, path: Path) -> tuple[str, int]:
    """Writes ``path`` atomically (temporary name, fsync, rename) in an existing folder, mode
    0600 from the start (``private.open_private``); returns (sha256, bytes).

    The columns are made contiguous first: the writer cuts pages where the arrays' chunks end,
    so the same rows read in different chunks (a paced export, a different CSV block) would
    otherwise make files that differ in layout; this way equal rows make equal bytes."""
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with os.fdopen(open_private(tmp), "wb") as fh:
        pq.write_table(table.combine_chunks(), fh, compression="zstd", compression_level=3,
                       write_page_checksum=True, row_group_size=256 * 1024)
        fh.flush()
        os.fsync(fh.fileno())
    digest, size = sha256_file(tmp), tmp.stat().st_size
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return digest, size


def read_parquet(path: Path, expected_sha256: str | None, expected_rows: int | None,
                 pace: Pacer | None = None) -> pa.Table:
    """Reads an archive file back whole, refusing a missing, altered or unreadable one; with
    ``pace``, in paced batches of ``LOAD_CHUNK_ROWS`` rows on one thread."""
    if not path.is_file():
        raise ArchiveFileError(f"archive file {path} is missing")
    if expected_sha256 is not None:
        actual = sha256_file(path)
        if actual != expected_sha256:
            raise ArchiveFileError(
                f"archive file {path} is corrupt: sha256 {actual[:16]}... differs from the manifest's "
                f"{expected_sha256[:16]}...")
    try:
        # ParquetFile, not read_table: the latter imports pyarrow.dataset (1.5 s per process).
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        if pace is None:
            table = parquet.read()
        else:
            batches = []
            reader = parquet.iter_batches(batch_size=LOAD_CHUNK_ROWS, use_threads=False)
            while True:
                with pace.chunk():
                    batch = next(reader, None)
                if batch is None:
                    break
                batches.append(batch)
            table = pa.Table.from_batches(batches, schema=parquet.schema_arrow)
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveFileError(f"archive file {path} cannot be read: {exc}") from None
    if expected_rows is not None and table.num_rows != expected_rows:
        raise ArchiveFileError(
            f"archive file {path} holds {table.num_rows} rows, its manifest says {expected_rows}")
    return table
