"""The legacy SQLite file, opened read-only and read from one consistent snapshot.

``mode=ro`` (never ``immutable=1``, which ignores a ``-wal`` file and would silently miss its
rows) and one read transaction held from the first count to the last row, so a file that an
old agent is still writing migrates as of one instant and the counts verified at the end are
the counts of exactly what was read.

The file is not trusted: ``trusted_schema=OFF`` keeps its schema (generated columns, views,
triggers, indexes) from calling any function that is not harmless, and every row is read
through ``select_capped``, which leaves a value larger than ``MAX_VALUE_BYTES`` in the file
and names it, so that its row is rejected without the value ever reaching Python.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from agents_pipeline.defs.migration.mapping import COMPANION, Mapping, MappingError, ViewFacts, apply_sql
from agents_pipeline.defs.migration.values import MAX_VALUE_BYTES, BadText, decode_text

SQLITE_MAGIC = b"SQLite format 3\x00"
# A batch's text and blobs, in bytes: each batch exists several times over while it is converted,
# rendered and sent (values, CSV, the queue of two), and up to four processes hold batches; so
# batches are cut by bytes as well as by rows, and the whole tree stays far under 512 MB.
MAX_BATCH_BYTES = 4 * 1024 * 1024
LAST_ROWID = 2**63 - 1   # SQLite's largest rowid: a range without an end
FIRST_ROWID = -(2**63)   # and its smallest: where a table's first resume point starts (rowids may be <= 0)


class LegacyFileError(Exception):
    """The file cannot be migrated at all: missing, not SQLite, corrupt, unreadable."""


def qident(name: str) -> str:
    """An identifier quoted for SQLite; names come from the file and may be hostile."""
    return '"' + name.replace('"', '""') + '"'


def range_conditions(column: str, mark: str, after: int | None, until: int | None) -> tuple[list[str], tuple]:
    """The conditions keeping ``after < column <= until`` and their values, for ``mark`` as the
    driver's placeholder (None: no bound on that side, so the counts of ranges that tile the
    rowids add up to the whole table's). ``column`` is a constant of the caller."""
    kept = [(cond, value) for cond, value in ((f"{column} > {mark}", after), (f"{column} <= {mark}", until))
            if value is not None]
    return [cond for cond, _ in kept], tuple(value for _, value in kept)


def value_bytes(expr: str) -> str:
    """SQL for the size of ``expr``'s value in bytes (a text's UTF-8 bytes, not its characters:
    constant time, where counting characters reads the whole text once more)."""
    return f"length(CAST({expr} AS BLOB))"


def capped_value(expr: str) -> str:
    """``expr``, or NULL when its value is larger than MAX_VALUE_BYTES (never read into Python)."""
    return f"CASE WHEN {value_bytes(expr)} > {MAX_VALUE_BYTES} THEN NULL ELSE {expr} END"


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

    def __init__(self, path: str | Path, mapping: Mapping | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        _check_header(self.path)
        uri = f"file:{quote(str(self.path))}?mode=ro"
        try:
            self.conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise LegacyFileError(f"{self.path}: cannot be opened read-only: {exc}") from None
        self.conn.text_factory = decode_text
        self._distrust_schema()
        try:
            self.conn.execute("BEGIN")
            # The first read fixes the snapshot (and reads the -wal file, if any).
            rows = self.conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            hint = (" (its schema calls SQL functions, in a generated column, view, trigger or index, "
                    "that are not run on a file from elsewhere)") if "unsafe use of" in str(exc) else ""
            raise LegacyFileError(f"{self.path}: not a usable SQLite database: {exc}{hint}") from None
        self._tables: dict[str, TableInfo] = {}
        for _type, name, create_sql in rows:
            if isinstance(name, BadText) or name.startswith("sqlite_"):
                continue
            self._tables[name] = self._describe(name, create_sql)
        self.journal_mode = self.conn.execute("PRAGMA journal_mode").fetchone()[0]
        self.mapped_from: dict[str, str] = {}     # documented table -> the source table a mapping read
        self.ignored: dict[str, list[str]] = {}   # documented table -> source columns not imported
        self.as_legacy: set[str] = set()          # tables a mapping sends to the legacy schema as they are
        self.view_bodies: dict[str, str] = {}     # documented table -> the SELECT its temp view runs
        self.view_facts: dict[str, ViewFacts] = {}  # documented table -> what its view guarantees
        if mapping is not None:
            try:
                self._apply(mapping)
            except BaseException:
                self.conn.close()
                raise

    def _apply(self, mapping: Mapping) -> None:
        """Temp views present the mapped tables in the documented layout (``mapping.py``)."""
        for table, spec in mapping.fleet_tables().items():
            info = self._tables.get(table)
            if info is not None and (not info.has_rowid or "rowid" in {c.lower() for c in info.columns}):
                raise MappingError(f"mapping: table {table!r} has no usable rowid (WITHOUT ROWID, or a column "
                                   f"named rowid): map it to 'legacy' instead of {spec.target}")
        applied = apply_sql(mapping, {name: info.columns for name, info in self._tables.items()})
        for statement in applied.statements:
            self.execute(statement)
        for legacy, table in applied.views.items():
            del self._tables[table]
            cols = [str(c[1]) for c in self.execute(f"PRAGMA temp.table_info({qident(legacy)})").fetchall()]
            # documented columns only: not the companions the set-based path reads (mapping.ViewFacts)
            self._tables[legacy] = TableInfo(name=legacy, columns=[c for c in cols if c != "rowid" and COMPANION not in c])
        self.mapped_from, self.ignored = dict(applied.views), applied.ignored
        self.view_bodies = dict(applied.bodies)
        self.view_facts = dict(applied.facts)
        self.as_legacy = {t for t, spec in mapping.tables.items() if spec.target == "legacy"}

    def _distrust_schema(self) -> None:
        """``PRAGMA trusted_schema = OFF`` before the schema is first read: SQL in the file's
        schema may then only call functions SQLite marks innocuous. A SQLite older than 3.31
        has no such switch and would run them: refused rather than read."""
        self.conn.execute("PRAGMA trusted_schema = OFF")
        if self.conn.execute("PRAGMA trusted_schema").fetchone() != (0,):
            self.conn.close()
            raise LegacyFileError(f"{self.path}: the SQLite library ({sqlite3.sqlite_version}) cannot turn "
                                  "trusted_schema off (3.31 or newer is needed to read a file safely)")

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

    def count(self, table: str, after_rowid: int | None = None, until_rowid: int | None = None) -> int:
        """Rows of the table, or of its rowids after ``after_rowid`` up to ``until_rowid``
        (``range_conditions``)."""
        where, values = range_conditions("rowid", "?", after_rowid, until_rowid)
        if not where:
            return self.select(table, ["count(*)"]).fetchone()[0]
        return self.execute(f"SELECT count(*) FROM {qident(table)} WHERE "  # noqa: S608 - quoted, constant conditions
                            + " AND ".join(where), values).fetchone()[0]

    def select(self, table: str, columns: list[str | None], *, distinct: bool = False,
               after_rowid: int | None = None, capped: bool = False) -> sqlite3.Cursor:
        """SELECT over one table. ``columns`` are file column names (quoted here), None for a
        column the file lacks (read as NULL), or the literal 'count(*)' / 'rowid'. ``capped``:
        a value larger than MAX_VALUE_BYTES is read as NULL (see ``select_capped``)."""
        exprs = [c if c in ("count(*)", "rowid") else "NULL" if c is None
                 else capped_value(qident(c)) if capped else qident(c) for c in columns]
        query = f"SELECT {'DISTINCT ' if distinct else ''}{', '.join(exprs)} FROM {qident(table)}"  # noqa: S608 - quoted
        if after_rowid is None:
            return self.execute(query)
        return self.execute(query + " WHERE rowid > ? ORDER BY rowid", (after_rowid,))

    def select_capped(self, table: str, columns: list[str | None], *, after_rowid: int | None = None,
                      until_rowid: int = LAST_ROWID, rowids: list[int] | None = None,
                      key: str = "rowid") -> sqlite3.Cursor:
        """Rows as (``key``, note, values...): a value larger than MAX_VALUE_BYTES is read as
        NULL and described in the note (``values.parse_oversize``), '' for a row within the
        limit. The check is in the query, not SQLITE_LIMIT_LENGTH, which would abort the whole
        read at the first such value instead of rejecting its row. ``key`` is 'rowid', or an
        expression such as ``row_number() OVER ()`` for a table without one (full reads only).
        ``after_rowid`` and ``until_rowid``: a range of rowids (parts.Part), in rowid order."""
        exprs = ["NULL" if c is None else capped_value(qident(c)) for c in columns]
        notes = [f"CASE WHEN {value_bytes(qident(c))} > {MAX_VALUE_BYTES} THEN '{i}:' || typeof({qident(c)}) "
                 f"|| ':' || {value_bytes(qident(c))} || ' ' ELSE '' END" for i, c in enumerate(columns) if c is not None]
        note = " || ".join(notes) or "''"
        query = f"SELECT {key}, {note}, {', '.join(exprs)} FROM {qident(table)}"  # noqa: S608 - quoted
        if rowids is not None:
            return self.execute(f"{query} WHERE rowid IN ({', '.join('?' * len(rowids))}) ORDER BY rowid",
                                tuple(rowids))
        if after_rowid is not None:
            return self.execute(f"{query} WHERE rowid > ? AND rowid <= ? ORDER BY rowid", (after_rowid, until_rowid))
        return self.execute(query)

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

    def batches(self, cursor: sqlite3.Cursor, max_rows: int, max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[tuple]]:
        """The cursor's rows in lists of at most ``max_rows`` rows and about ``max_bytes`` bytes
        of text and blobs (at least one row). Rows are fetched in steps sized from the largest
        row seen so far, starting with one: a step of rows that each hold several 1 MiB values
        would otherwise cost hundreds of MB before any batch could be cut."""
        step, batch, size = 1, [], 0
        while rows := self.fetch(cursor, min(step, max_rows)):
            largest = 0
            for row in rows:
                row_size = 16 * len(row)
                for value in row:
                    if type(value) in (str, bytes, BadText):
                        row_size += len(value)
                largest = max(largest, row_size)
                batch.append(row)
                size += row_size
                if len(batch) >= max_rows or size >= max_bytes:
                    yield batch
                    batch, size = [], 0
            step = max(1, min(1024, max_bytes // (8 * largest)))
        if batch:
            yield batch

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
