"""What one batch carries from the reader thread to COPY, and the CSV it is streamed as.

The CSV is rendered by hand rather than with the ``csv`` module: for the multi-KB texts of
conversations ``csv.writer`` scans every character and measured about 50 us a row, while
``str.replace`` on the quote character runs at memory speed. The format is the one COPY reads
with ``(FORMAT csv, NULL '\\N')``: strings quoted (so a real string ``\\N`` stays a string),
numbers bare, NULL as an unquoted ``\\N``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from uuid import UUID

from psycopg2 import sql

COPY_OPTIONS = sql.SQL("(FORMAT csv, NULL '\\N')")
NULL = "\\N"


def _quoted(value: object) -> str:
    return '"' + str(value).replace('"', '""') + '"'


_RENDER = {
    str: lambda v: '"' + v.replace('"', '""') + '"',
    int: repr,
    float: repr,
    bool: lambda v: "true" if v else "false",
    Decimal: str,
    datetime: _quoted,
    UUID: _quoted,
    bytes: lambda v: '"\\x' + v.hex() + '"',     # bytea's hex form
}


def csv_bytes(rows: list[tuple]) -> bytes:
    """COPY CSV for converted rows (values of the types converters return)."""
    render = _RENDER
    lines = [",".join([NULL if v is None else render.get(type(v), _quoted)(v) for v in row]) for row in rows]
    if not lines:
        return b""
    return ("\n".join(lines) + "\n").encode("utf-8")


@dataclass
class Batch:
    """One batch of consecutive rowids: what to COPY, what was rejected, what to record."""

    read: int                               # legacy rows in the batch (converted + rejected)
    last_rowid: int                         # the resume point once this batch commits
    ids: list[int]                          # legacy ids of the converted rows in ``payload``
    payload: bytes                          # COPY CSV of the converted rows
    digest_total: int                       # sum of the converted rows' digests
    rejects: list[tuple[int, str, tuple]]   # (rowid, reason, original values)
    days: set[date] = field(default_factory=set)
    digests: dict[int, int] = field(default_factory=dict)   # per row, when a row may still conflict
    originals: dict[int, tuple] = field(default_factory=dict)
    good: list[tuple] = field(default_factory=list)        # converted rows, when a unique check needs them

    def merge(self, other: Batch) -> None:
        """Adds the rows of a batch over other rowids of the same range (the slow path's)."""
        self.read += other.read
        self.last_rowid = max(self.last_rowid, other.last_rowid)
        self.ids += other.ids
        self.payload += other.payload
        self.digest_total += other.digest_total
        self.rejects += other.rejects
        self.days |= other.days
        self.digests.update(other.digests)
        self.originals.update(other.originals)
        self.good += other.good
