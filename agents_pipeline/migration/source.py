"""The legacy SQLite file, opened read-only and read from one consistent snapshot.

``mode=ro`` (never ``immutable=1``, which ignores a ``-wal`` file and would silently miss its
rows) and one read transaction held from the first count to the last row, so a file that an
old agent is still writing migrates as of one instant and the counts verified at the end are
the counts of exactly what was read.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from agents_pipeline.migration.values import BadText, decode_text

SQLITE_MAGIC = b"SQLite format 3\x00"


class LegacyFileError(Exception):
    """The file cannot be migrated at all: missing, not SQLite, corrupt, unreadable."""


def qident(name: str) -> str:
    """An identifier quoted for SQLite; names come from the file and may be hostile."""
    return '"' + name.replace('"', '""') + '"'


@dataclass
class TableInfo:
    name: str
    columns: list[str]
    declared: dict[str, str] = field(default_factory=dict)
    notnull: set[str] = field(default_factory=set)
    primary_key: list[str] = field(default_factory=list)
    has_rowid: bool = True


def _check_header(path: Path) -> None:
    if not path.exists():
        raise LegacyFileError(f"{path}: no such file")
    if not path.is_file():
        raise LegacyFileError(f"{path}: not a regular file")
    try:
        with path.open("rb") as fh:
            head = fh.read(100)
    except OSError as exc:
        raise LegacyFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(head) == 0:
        raise LegacyFileError(f"{path}: the file is empty, not a SQLite database")
    if not head.startswith(SQLITE_MAGIC):
        raise LegacyFileError(f"{path}: not a SQLite database (no 'SQLite format 3' header)")
    if len(head) < 100:
        raise LegacyFileError(f"{path}: truncated SQLite file ({len(head)} bytes, header incomplete)")
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    size = path.stat().st_size
    # The in-header page count is valid when the change counters match (SQLite >= 3.7.0).
    if head[24:28] == head[92:96] and pages and size < pages * page_size:
        raise LegacyFileError(
            f"{path}: truncated or corrupt SQLite file: the header announces {pages} pages of "
            f"{page_size} bytes ({pages * page_size} bytes) but the file has {size} bytes")


class LegacySource:
    """A read-only connection holding one read transaction for its whole life."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser().resolve()
        _check_header(self.path)
        uri = f"file:{quote(str(self.path))}?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise LegacyFileError(f"{self.path}: cannot be opened read-only: {exc}") from None
        self.conn.text_factory = decode_text
        try:
            self.conn.execute("BEGIN")
            # The first read fixes the snapshot (and reads the -wal file, if any).
            rows = self.conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise LegacyFileError(f"{self.path}: not a usable SQLite database: {exc}") from None
        self._tables: dict[str, TableInfo] = {}
        for _type, name, create_sql in rows:
            if isinstance(name, BadText) or name.startswith("sqlite_"):
                continue
            self._tables[name] = self._describe(name, create_sql)
        self.journal_mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]

    def _describe(self, name: str, create_sql: object) -> TableInfo:
        info = TableInfo(name=name, columns=[])
        try:
            cols = self.conn.execute(f"PRAGMA table_info({qident(name)})").fetchall()
        except sqlite3.DatabaseError as exc:
            raise LegacyFileError(f"{self.path}: table {name!r} cannot be described: {exc}") from None
        pk: list[tuple[int, str]] = []
        for _cid, col, decl, notnull, _default, pk_pos in cols:
            info.columns.append(str(col))
            info.declared[str(col)] = str(decl or "")
            if notnull:
                info.notnull.add(str(col))
            if pk_pos:
                pk.append((pk_pos, str(col)))
        info.primary_key = [c for _, c in sorted(pk)]
        info.has_rowid = "WITHOUT ROWID" not in str(create_sql or "").upper()
        return info

    @property
    def tables(self) -> dict[str, TableInfo]:
        return self._tables

    def count(self, table: str) -> int:
        return self.select(table, ["count(*)"]).fetchone()[0]

    def select(self, table: str, columns: list[str | None], *, distinct: bool = False,
               after_rowid: int | None = None) -> sqlite3.Cursor:
        """SELECT over one table. ``columns`` are file column names (quoted here), None for a
        column the file lacks (read as NULL), or the literal 'count(*)' / 'rowid'."""
        exprs = [c if c in ("count(*)", "rowid") else "NULL" if c is None else qident(c) for c in columns]
        query = f"SELECT {'DISTINCT ' if distinct else ''}{', '.join(exprs)} FROM {qident(table)}"  # noqa: S608 - quoted
        if after_rowid is None:
            return self.execute(query)
        return self.execute(query + " WHERE rowid > ? ORDER BY rowid", (after_rowid,))

    def execute(self, sql: str, params: tuple = ()) -> sqlite3.Cursor:
        """Runs a read in the snapshot; corruption found while reading becomes a clear error."""
        try:
            return self.conn.execute(sql, params)
        except sqlite3.DatabaseError as exc:
            raise LegacyFileError(f"{self.path}: corrupt SQLite file, reading failed: {exc}") from None

    def fetch(self, cursor: sqlite3.Cursor, size: int) -> list[tuple]:
        try:
            return cursor.fetchmany(size)
        except sqlite3.DatabaseError as exc:
            raise LegacyFileError(f"{self.path}: corrupt SQLite file, reading failed: {exc}") from None

    def close(self) -> None:
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error:
            pass
        self.conn.close()

    def __enter__(self) -> LegacySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
