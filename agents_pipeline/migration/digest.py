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
from datetime import datetime
from uuid import UUID

from psycopg2 import sql

from agents_pipeline.migration.values import EPOCH

SEP = "\x1f"
NULL = "\\N"


def _render(kind: str, value: object) -> str:
    if value is None:
        return NULL
    if kind == "float":
        return struct.pack(">d", value).hex()
    if kind == "ts":
        assert isinstance(value, datetime)
        delta = value - EPOCH
        return str((delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)
    if kind == "bool":
        return "true" if value else "false"
    if kind == "json":
        return "j"
    if kind == "numeric":
        return format(value, "f")
    if kind == "bytea":
        return "\\x" + bytes(value).hex()  # type: ignore[arg-type]
    if kind == "uuid":
        return str(UUID(str(value)))
    return str(value)


def row_digest(kinds: tuple[str, ...], values: tuple) -> int:
    rendered = SEP.join([_render(k, v) for k, v in zip(kinds, values, strict=True)])
    return int(hashlib.md5(rendered.encode("utf-8"), usedforsecurity=False).hexdigest()[:15], 16)


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
