"""Tables the migration does not know, copied into the ``legacy`` schema value for value.

Column types are inferred from the values actually stored (SQLite declares types loosely and
enforces none): only integers -> bigint, integers and reals -> double precision, valid text ->
text, blobs or text that is not UTF-8 (or holds NUL) -> bytea, and a mix of numbers and text
-> text holding each number's SQLite text form. NOT NULL and the primary key are kept when the
data satisfies them. Each table is replaced atomically, so a re-run or a resumed run ends with
the same table; names from the file are only ever passed as quoted identifiers. A row holding a
value over the size limit (``values.MAX_VALUE_BYTES``) is rejected like a known table's, under
the name ``legacy.<table>``, with the value left in the file.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from psycopg2 import sql

from agents_pipeline.defs.migration.copydata import COPY_OPTIONS, csv_bytes
from agents_pipeline.defs.migration.digest import row_digest, sum_sql
from agents_pipeline.defs.migration.loader import kill_point, store_rejects
from agents_pipeline.defs.migration.source import LegacySource, TableInfo
from agents_pipeline.defs.migration.values import BadText, oversize_reason, parse_oversize

SCHEMA = "legacy"


@dataclass
class UserTableResult:
    sqlite_name: str
    pg_name: str
    columns: dict[str, str]
    read: int = 0
    written: int = 0
    rejected: int = 0
    seconds: float = 0.0
    expected_digest: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rejects_name(self) -> str:
        """Its rows' name in fleet.legacy_rejects: where the table went, so that a known table
        also copied whole here (extra columns) never mixes its rejects with these."""
        return f"{SCHEMA}.{self.pg_name}"


def pg_identifier(name: str, taken: set[str], salt: str = "") -> str:
    """PostgreSQL truncates identifiers at 63 bytes; a longer (or taken) name gets a hash
    suffix instead of silently colliding with another name."""
    candidate = name
    if len(name.encode("utf-8")) > 63 or candidate in taken:
        suffix = "_" + hashlib.sha1(f"{salt}{name}".encode("utf-8", "surrogatepass")).hexdigest()[:8]
        base = name.encode("utf-8")[: 63 - len(suffix)].decode("utf-8", "ignore")
        candidate = base + suffix
    taken.add(candidate)
    return candidate


def _pg_type(classes: set[str], binary_text: bool, big_int: bool = False) -> tuple[str, str]:
    """(PostgreSQL type, digest kind) for the set of storage classes seen in a column.
    Integers beyond 2**53 mixed with reals would lose digits in a double: text keeps them."""
    classes = classes - {"null"}
    if not classes:
        return "text", "text"
    if "blob" in classes or ("text" in classes and binary_text):
        return "bytea", "bytea"
    if classes == {"integer"}:
        return "bigint", "int"
    if classes <= {"integer", "real"} and not big_int:
        return "double precision", "float"
    return "text", "text"


def _classify(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, BadText | bytes):
        return "blob" if not isinstance(value, BadText) else "text"
    if isinstance(value, str):
        return "text"
    return "real" if isinstance(value, float) else "integer"


def _as(kind: str, value: object) -> object:
    """A value in the column's inferred type, unchanged in content."""
    if value is None:
        return None
    if kind == "bytea":
        raw = value.encode("utf-8") if isinstance(value, str) else (
            bytes(value) if isinstance(value, bytes) else str(value).encode())
        return raw
    if kind == "float":
        return float(value)  # type: ignore[arg-type]
    if kind == "text" and isinstance(value, float):
        return repr(value)
    if kind == "text" and not isinstance(value, str):
        return str(value)
    return value


class _Chunks(io.RawIOBase):
    """A file-like over a generator of CSV chunks, so COPY streams without holding the table."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self._pending = chunks, b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while len(self._pending) < max(size, 1):
            try:
                self._pending += next(self._chunks)
            except StopIteration:
                break
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


def _row_key(info: TableInfo) -> str:
    """What identifies a row in the rejects: its rowid, or its position where there is no
    rowid to name (WITHOUT ROWID, or a column called rowid hiding it)."""
    if info.has_rowid and "rowid" not in {c.lower() for c in info.columns}:
        return "rowid"
    return "row_number() OVER ()"


def copy_user_table(conn, source: LegacySource, info: TableInfo, source_id: int, batch_size: int,
                    dry_run: bool, pg_name: str,
                    progress: Callable[[str, int], None] | None = None) -> UserTableResult:
    started = time.monotonic()
    classes: list[set[str]] = [set() for _ in info.columns]
    binary = [False] * len(info.columns)
    nulls = [False] * len(info.columns)
    big = [False] * len(info.columns)
    key = _row_key(info)
    cursor = source.select_capped(info.name, list(info.columns), key=key)
    for rows in source.batches(cursor, batch_size):
        for _key, note, *row in rows:
            if note:          # rejected below, unread
                continue
            for i, value in enumerate(row):
                cls = _classify(value)
                classes[i].add(cls)
                nulls[i] = nulls[i] or value is None
                if cls == "integer" and abs(value) > 2**53:  # type: ignore[arg-type]
                    big[i] = True
                if isinstance(value, BadText) or (isinstance(value, str) and "\x00" in value):
                    binary[i] = True
    types = [_pg_type(c, b, g) for c, b, g in zip(classes, binary, big, strict=True)]
    col_taken: set[str] = set()
    pg_cols = [pg_identifier(c, col_taken) for c in info.columns]
    result = UserTableResult(info.name, pg_name,
                             {c: t for c, (t, _) in zip(pg_cols, types, strict=True)})
    for col, cls, (pg_type, _) in zip(info.columns, classes, types, strict=True):
        if len(cls - {"null"}) > 1:
            result.notes.append(f"column {col!r} holds {'/'.join(sorted(cls - {'null'}))} values: stored as {pg_type}")
    kinds = tuple(k for _, k in types)
    rejects: list[tuple[int, str, tuple]] = []

    def chunks() -> Iterator[bytes]:
        cur = source.select_capped(info.name, list(info.columns), key=key)
        for batch in source.batches(cur, batch_size):
            rows = []
            for row_id, note, *row in batch:
                if note:
                    found = parse_oversize(note)
                    rejects.append((row_id, oversize_reason(info.columns, found),
                                    tuple(found.get(i, v) for i, v in enumerate(row))))
                    continue
                converted = tuple(_as(k, v) for k, v in zip(kinds, row, strict=True))
                result.expected_digest += row_digest(kinds, converted)
                rows.append(converted)
            result.read += len(batch)
            if progress is not None:
                progress(info.name, len(batch))
            yield csv_bytes(rows)

    if dry_run:
        for _ in chunks():
            pass
        result.rejected = len(rejects)
        result.seconds = time.monotonic() - started
        return result
    table = sql.Identifier(SCHEMA, result.pg_name)
    columns_sql = sql.SQL(", ").join(
        sql.SQL("{} {}{}").format(sql.Identifier(c), sql.SQL(t), sql.SQL(" NOT NULL" if c0 in info.notnull and not n else ""))
        for c, c0, (t, _), n in zip(pg_cols, info.columns, types, nulls, strict=True))
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        cur.execute(sql.SQL("CREATE TABLE {} ({})").format(table, columns_sql))
        cur.copy_expert(sql.SQL("COPY {} FROM STDIN WITH {}").format(table, COPY_OPTIONS).as_string(cur),
                        _Chunks(chunks()), size=256 * 1024)
        kill_point("before_commit", info.name, 1)
        if info.primary_key:
            pk = [pg_cols[info.columns.index(c)] for c in info.primary_key]
            cur.execute("SAVEPOINT pk")
            try:
                cur.execute(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                    table, sql.SQL(", ").join(map(sql.Identifier, pk))))
                cur.execute("RELEASE SAVEPOINT pk")
            except Exception as exc:  # duplicates or NULLs that SQLite tolerated: keep the rows
                cur.execute("ROLLBACK TO SAVEPOINT pk")
                result.notes.append(f"primary key ({', '.join(info.primary_key)}) not added: {str(exc).strip()}")
        cur.execute("""INSERT INTO fleet.legacy_user_tables (source_id, sqlite_name, pg_name) VALUES (%s, %s, %s)
                       ON CONFLICT (source_id, sqlite_name) DO UPDATE SET pg_name = excluded.pg_name""",
                    (source_id, info.name, result.pg_name))
        # Replaced with the table: the rejects of this run only.
        cur.execute("DELETE FROM fleet.legacy_rejects WHERE source_id = %s AND table_name = %s",
                    (source_id, result.rejects_name))
        store_rejects(cur, source_id, result.rejects_name, info.columns, rejects)
    result.rejected = len(rejects)
    result.written = result.read - result.rejected
    result.seconds = time.monotonic() - started
    return result


def verify_user_table(conn, result: UserTableResult, source_id: int) -> tuple[int, int, int]:
    """(rows, digest, rejects) recomputed by SQL over the committed legacy table and rejects."""
    digest = sum_sql(tuple((c, _kind(t)) for c, t in result.columns.items()))
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT count(*), {} FROM {}").format(digest, sql.Identifier(SCHEMA, result.pg_name)))
        count, total = cur.fetchone()
        cur.execute("SELECT count(*) FROM fleet.legacy_rejects WHERE source_id = %s AND table_name = %s",
                    (source_id, result.rejects_name))
        rejected = cur.fetchone()[0]
    return count, int(total), rejected


def _kind(pg_type: str) -> str:
    return {"bigint": "int", "double precision": "float", "bytea": "bytea"}.get(pg_type, "text")
