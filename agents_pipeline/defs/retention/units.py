"""The rows that make up one archived day of one table ("a unit"), as SQL.

A partitioned table's day is its partition (attached or not). An unpartitioned table's day is
the rows whose time column falls in the UTC day, less those kept live (open alerts), plus the
dependent rows of other tables that reference them (an alert's notifications), which go into
the same manifest so that deleting the alerts never trips a foreign key.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import date

import psycopg2
from psycopg2 import sql

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.defs.retention.partitions import bounds, partition_ident
from agents_pipeline.defs.retention.policy import TableSpec


@contextmanager
def connect(url: str, *, autocommit: bool = False):
    conn = psycopg2.connect(**connect_kwargs(url), application_name="agents_pipeline:retention")
    conn.autocommit = True
    with conn.cursor() as cur:
        # A day's rows are staged in temporary tables to be compared; the 8 MB default would
        # spill them to disk. Settable only before the session's first temporary table.
        cur.execute("SET temp_buffers = '256MB'")
    conn.autocommit = autocommit
    try:
        yield conn
    finally:
        conn.close()


def day_filter(spec: TableSpec, day: date, alias: str = "t") -> sql.Composable:
    """``alias.time >= day AND alias.time < day + 1`` (UTC), less the rows kept live."""
    lo, hi = bounds(day)
    col = sql.Identifier(alias, spec.time_column)
    cond = sql.SQL("{} >= {} AND {} < {}").format(col, sql.Literal(lo), col, sql.Literal(hi))
    if spec.keep_filter:
        # keep_filter is a fixed string from the allow-list in policy.py, never input.
        cond = sql.SQL("{} AND NOT ({})").format(cond, sql.SQL(spec.keep_filter.replace("{t}", alias)))
    return cond


def day_rows(spec: TableSpec, day: date) -> sql.Composable:
    """A parenthesised query for the unit's own rows in PostgreSQL."""
    if spec.partitioned:
        return partition_ident(spec.name, day)
    return sql.SQL("(SELECT t.* FROM {} t WHERE {})").format(
        sql.Identifier("fleet", spec.name), day_filter(spec, day))


def temp_name(kind: str, table: str) -> sql.Identifier:
    return sql.Identifier(f"retention_{kind}_{table}")


def create_temp_like(cur, kind: str, table: str) -> sql.Identifier:
    """A session temporary table with the columns of fleet.<table> (no constraints)."""
    name = temp_name(kind, table)
    cur.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
    cur.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {})").format(name, sql.Identifier("fleet", table)))
    return name


def min_day_sql(spec: TableSpec) -> sql.Composable:
    """The oldest UTC day still held in PostgreSQL for the table (unpartitioned tables)."""
    return sql.SQL("SELECT (min({}) AT TIME ZONE 'UTC')::date FROM {} t WHERE {}").format(
        sql.Identifier(spec.time_column), sql.Identifier("fleet", spec.name),
        sql.SQL("NOT ({})").format(sql.SQL(spec.keep_filter.replace("{t}", "t"))) if spec.keep_filter else sql.SQL("true"))
