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
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from psycopg2 import sql

from agents_pipeline.core.errors import ValidationError

_ARROW_TYPES = {
    "bigint": pa.int64(), "integer": pa.int32(), "smallint": pa.int16(),
    "double precision": pa.float64(), "real": pa.float32(), "boolean": pa.bool_(), "text": pa.string(),
}
_TIMESTAMPTZ = "timestamp with time zone"
FORMAT_VERSION = 1


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


def export_rows(cur, source: sql.Composable, columns: list[Column]) -> pa.Table:
    """The rows of ``source`` (a relation or parenthesised query) as an Arrow table."""
    query = sql.SQL("COPY (SELECT {} FROM {} t) TO STDOUT WITH (FORMAT csv)").format(
        sql.SQL(", ").join(_export_expr(c) for c in columns), source)
    buf = io.BytesIO()
    cur.copy_expert(query.as_string(cur.connection), buf)
    read_types = {c.name: (pa.int64() if c.pg_type == _TIMESTAMPTZ else c.arrow_type) for c in columns}
    if buf.tell() == 0:
        arrays = [pa.array([], type=c.arrow_type) for c in columns]
        return pa.Table.from_arrays(arrays, schema=schema_for(columns))
    buf.seek(0)
    raw = pacsv.read_csv(
        buf,
        read_options=pacsv.ReadOptions(column_names=[c.name for c in columns], block_size=1 << 24),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types=read_types, strings_can_be_null=True, quoted_strings_can_be_null=False,
            null_values=[""], true_values=["t"], false_values=["f"]),
    )
    arrays = [raw.column(c.name).cast(c.arrow_type) if c.pg_type == _TIMESTAMPTZ else raw.column(c.name)
              for c in columns]
    return pa.Table.from_arrays(arrays, schema=schema_for(columns))


def load_rows(cur, table: pa.Table, target: sql.Composable, columns: list[Column]) -> int:
    """COPY an Arrow table (as read from an archive) into ``target``; returns the row count."""
    if table.num_rows == 0:
        return 0
    ordered = table.select([c.name for c in columns])
    # Written as UTC wall-clock time without a zone (30x faster to format than a zoned one)
    # and read by a session whose TimeZone is UTC.
    for i, field in enumerate(ordered.schema):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            ordered = ordered.set_column(i, field.name, ordered.column(i).cast(pa.timestamp(field.type.unit)))
    stable_text(cur)
    buf = io.BytesIO()
    pacsv.write_csv(ordered, buf, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    buf.seek(0)
    query = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv)").format(
        target, sql.SQL(", ").join(sql.Identifier(c.name) for c in columns))
    cur.copy_expert(query.as_string(cur.connection), buf)
    return table.num_rows


def stable_text(cur) -> None:
    """Session settings under which a row's text form is the same in every process."""
    cur.execute("SET LOCAL TimeZone = 'UTC'")
    cur.execute("SET LOCAL extra_float_digits = 1")
    cur.execute("SET LOCAL DateStyle = 'ISO, YMD'")
    cur.execute("SET LOCAL IntervalStyle = 'postgres'")


def fingerprint(cur, source: sql.Composable) -> str:
    """``rows:sum`` over fleet.row_fingerprint of each row's text form (UTC, exact floats)."""
    stable_text(cur)
    cur.execute(sql.SQL(
        "SELECT count(*), coalesce(sum(fleet.row_fingerprint(t::text)), 0) FROM {} t").format(source))
    rows, total = cur.fetchone()
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
    """Writes ``path`` atomically (temporary name, fsync, rename); returns (sha256, bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd", compression_level=3, write_page_checksum=True,
                   row_group_size=256 * 1024)
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    digest, size = sha256_file(tmp), tmp.stat().st_size
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return digest, size


def read_parquet(path: Path, expected_sha256: str | None, expected_rows: int | None) -> pa.Table:
    """Reads an archive file back whole, refusing a missing, altered or unreadable one."""
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
        table = pq.ParquetFile(path, page_checksum_verification=True).read()
    except (OSError, pa.ArrowException) as exc:
        raise ArchiveFileError(f"archive file {path} cannot be read: {exc}") from None
    if expected_rows is not None and table.num_rows != expected_rows:
        raise ArchiveFileError(
            f"archive file {path} holds {table.num_rows} rows, its manifest says {expected_rows}")
    return table
