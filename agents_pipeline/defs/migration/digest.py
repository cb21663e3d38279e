"""Row digests that Python computes while converting and PostgreSQL recomputes with SQL.

Each written row contributes the first 60 bits of an MD5 over a canonical rendering of its
immutable columns; the sum per table is stored with each batch's progress. Verification then
runs the same rendering in SQL over the rows PostgreSQL committed, so a row changed, lost or
doubled anywhere between the converter and the disk shows up as a different sum. Renderings
are chosen to be exact on both sides: floats by their 8 bytes, times in epoch microseconds.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from psycopg2 import sql

from agents_pipeline.defs.migration.values import EPOCH

SEP = "\x1f"
NULL = "\\N"


_PACK = struct.Struct(">d").pack
_MICRO = timedelta(microseconds=1)
_RENDER: dict[str, Callable[[object], str]] = {
    "int": str,
    "text": str,
    "float": lambda v: _PACK(v).hex(),
    "ts": lambda v: str((v - EPOCH) // _MICRO),
    "bool": lambda v: "true" if v else "false",
    "json": lambda v: "j",
    "numeric": lambda v: format(v, "f"),
    "bytea": lambda v: "\\x" + bytes(v).hex(),
    "uuid": lambda v: str(v) if type(v) is UUID else str(UUID(str(v))),   # converters return UUIDs
}


def md5_60(data: bytes) -> int:
    """The first 60 bits of MD5, as an int: what ``sum_sql`` sums in PostgreSQL."""
    return int.from_bytes(hashlib.md5(data, usedforsecurity=False).digest()[:8]) >> 4


def digester(kinds: tuple[str, ...]) -> Callable[[tuple], int]:
    """A function from a row's values (in ``kinds`` order) to its 60-bit digest."""
    renders = [_RENDER[k] for k in kinds]

    def digest(values: tuple) -> int:
        rendered = SEP.join([NULL if v is None else f(v) for f, v in zip(renders, values, strict=True)])
        return md5_60(rendered.encode("utf-8"))

    return digest


def row_digest(kinds: tuple[str, ...], values: tuple) -> int:
    return digester(kinds)(values)


def _sql_render(kind: str, column: str) -> sql.Composable:
    col = sql.Identifier(column)
    templates = {
        "float": "encode(float8send({}), 'hex')",
        "ts": "((extract(epoch FROM {}) * 1000000)::bigint)::text",
        "bool": "{}::text",
        "json": "CASE WHEN {} IS NULL THEN NULL ELSE 'j' END",
        "numeric": "{}::text",
        "bytea": "'\\x' || encode({}, 'hex')",
        "uuid": "{}::text",
        "int": "{}::text",
        "text": "{}::text",
    }
    return sql.SQL("coalesce(" + templates[kind] + ", {})").format(col, sql.Literal(NULL))


def sum_sql(columns: tuple[tuple[str, str], ...]) -> sql.Composable:
    """``coalesce(sum(<digest>), 0)`` over (column, kind) pairs, for a SELECT over the table."""
    parts = sql.SQL(" || chr(31) || ").join(_sql_render(kind, col) for col, kind in columns)
    return sql.SQL("coalesce(sum(('x' || left(md5({}), 15))::bit(60)::bigint), 0)").format(parts)
