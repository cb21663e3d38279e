"""The set-based path for the two big history tables (heartbeats, performance metrics).

Converting value by value in Python costs 7-10 us a row, four times PostgreSQL's ingest. Here
SQLite's own SQL engine (C, run by the reader thread with the GIL released) decides for each
row whether it is in the plain form almost every row has (ISO time, known agent, valid JSON,
no NUL) and, if so, renders it straight into COPY's CSV, with the text its digest is taken
over. Python then only hashes those rows. Every row that is not plainly clean (any other
time form, an unknown agent, text in a number column, invalid UTF-8, ...) goes through the
per-value converters of ``tables.py`` exactly as before, so what a row becomes and why a row
is rejected is decided in one place; ``test_fastpath.py`` checks that both paths store the
same rows, digests and rejects. A row with a value over ``FAST_VALUE_BYTES`` is never rendered
here: SQLite returns its size instead, and it goes to the converters, whose reads are bounded
by bytes (a value over ``MAX_VALUE_BYTES`` is left in the file and its row rejected). So a
fetch of many rows never holds more than their small renderings, and the rows that are not
clean are read in groups of bounded size.
"""

from __future__ import annotations

import hashlib
import operator
import os
import sqlite3
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from itertools import islice

from agents_pipeline.defs.migration.copydata import Batch
from agents_pipeline.defs.migration.mapping import KEY_TABLE, ViewFacts, agent_id_column, micros_column
from agents_pipeline.defs.migration.source import (
    LAST_ROWID,
    MAX_BATCH_BYTES,
    LegacySource,
    qident,
    value_bytes,
)
from agents_pipeline.defs.migration.tables import HEARTBEAT_KIND, METRIC_NAME_MAX, Context, TableSpec

ENV = "AGENTS_PIPELINE_MIGRATION_FAST_PATH"   # "0" turns it off (every row through Python)
AGENT_MAP = "ap_agent_ids"
US = "\x1f"          # digest.py's separator, raw inside the SQL literal
_SLOW_CHUNK = 500    # rowids per lookup of the rows that need the per-value converters
_CHUNK_ROWS = 1024   # rows fetched and rendered at a time
FAST_VALUE_BYTES = 16 * 1024   # a row with a larger value goes to the converters' bounded reads
_pack = struct.Struct(">d").pack


def enabled() -> bool:
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def load_agent_map(source: LegacySource, agents: dict[str, int]) -> None:
    """The name -> agent_id map as a temp table (SQLite's temp schema is writable on a
    read-only connection and does not touch the snapshot of the file)."""
    source.execute(f"CREATE TEMP TABLE IF NOT EXISTS {AGENT_MAP} (name TEXT PRIMARY KEY, id INTEGER NOT NULL)")
    source.execute(f"DELETE FROM temp.{AGENT_MAP}")  # noqa: S608 - a constant name
    source.conn.executemany(f"INSERT INTO temp.{AGENT_MAP} VALUES (?, ?)",  # noqa: S608 - a constant name
                            sorted(agents.items()))
    if source.execute("SELECT 1 FROM sqlite_temp_master WHERE type = 'table' AND name = ?", (KEY_TABLE,)).fetchone():
        # a mapping's agent keys resolved once, here, rather than by a join per row (Known.agent)
        source.execute(f"UPDATE temp.{KEY_TABLE} SET id = (SELECT a.id FROM temp.{AGENT_MAP} AS a "  # noqa: S608
                       f"WHERE typeof({KEY_TABLE}.name) = 'text' AND a.name = {KEY_TABLE}.name)")


# SQL fragments over a column reference. Literals are SQLite strings: no backslash escapes.
def _no_nul(col: str) -> str:
    return f"instr(CAST({col} AS BLOB), x'00') = 0"


def _text_ok(col: str) -> str:
    return f"({col} IS NULL OR (typeof({col}) = 'text' AND {_no_nul(col)}))"


def _csv(col: str) -> str:
    """A CSV field; printf's %w doubles the double quotes in one pass."""
    return f"""CASE WHEN {col} IS NULL THEN '\\N' ELSE printf('"%w"', {col}) END"""


def _unless_oversize(render: str, *cols: str) -> str:
    """``render``, or NULL when a value of ``cols`` is over ``FAST_VALUE_BYTES``: neither SQLite
    nor Python then builds a rendering of a large value (such a row is never clean here)."""
    over = " OR ".join(f"{value_bytes(c)} > {FAST_VALUE_BYTES}" for c in cols)
    return f"CASE WHEN {over} THEN NULL ELSE {render} END"


def _small(cols: tuple[str, ...]) -> str:
    return " AND ".join(f"coalesce({value_bytes(c)}, 0) <= {FAST_VALUE_BYTES}" for c in cols)


def _raw_size(cols: tuple[str, ...]) -> str:
    """The row's bytes as the converters will read them (an upper bound: a value over
    MAX_VALUE_BYTES is not read at all)."""
    return " + ".join([f"coalesce({value_bytes(c)}, 0)" for c in cols] + [str(16 * len(cols))])


def _printf(template: str, *args: str) -> str:
    """One printf per rendered text: one allocation instead of one per || (measured 30 % less
    time than concatenation). Templates are constants of this module (no quote in them)."""
    return f"printf('{template}', {', '.join(args)})"


def _digest_text(col: str) -> str:
    return f"coalesce({col}, '\\N')"


_ISO = "20[0-9][0-9]-[01][0-9]-[0-3][0-9][T ][0-2][0-9]:[0-5][0-9]:[0-5][0-9]"


def _ts_ok(col: str) -> str:
    """ISO 'YYYY-MM-DD[T ]HH:MM:SS[.f{1,6}]' without zone, a real date, years 2000-2099 (the
    converters' sensible range), so PostgreSQL and Python read the same microsecond. One GLOB
    per length; SQLite's date parser only for days 29-31, the one case the pattern cannot tell."""
    globs = " ".join(f"WHEN {19 + (n and n + 1)} THEN {col} GLOB '{_ISO}{'.' + '[0-9]' * n if n else ''}'"
                     for n in range(7))
    return (f"(typeof({col}) = 'text' AND {_no_nul(col)} AND CASE length({col}) {globs} ELSE 0 END "
            f"AND substr({col}, 6, 2) BETWEEN '01' AND '12' AND substr({col}, 12, 2) <= '23' "
            f"AND CASE WHEN substr({col}, 9, 2) BETWEEN '01' AND '28' THEN 1 "   # CASE: evaluated lazily, OR is not
            f"ELSE datetime(substr({col}, 1, 19), '+0 days') = replace(substr({col}, 1, 19), 'T', ' ') END)")


# unixepoch() (SQLite 3.38+) reads the same second as strftime('%s') at two thirds of its cost;
# over the first 19 characters only: it rounds fractions through milliseconds (.9999 -> +1 s).
_SECONDS = "unixepoch(substr({}, 1, 19))" if sqlite3.sqlite_version_info >= (3, 38, 0) else "CAST(strftime('%s', substr({}, 1, 19)) AS INTEGER)"


def _ts_micros(col: str) -> str:
    """Epoch microseconds, as digest.py renders a time (``col`` passed ``_ts_ok``)."""
    # The fraction's digits right-padded to six ('.5' -> 500000; none -> the padding's 0).
    return f"({_SECONDS.format(col)} * 1000000 + CAST(substr({col} || '000000', 21, 6) AS INTEGER))"


def _json_ok(col: str, built: bool = False) -> str:
    """NULL, or JSON SQLite accepts as RFC 8259 (no control characters) without any \\u escape
    (jsonb refuses \\u0000 and lone surrogates, which the converter checks), without an
    exponent (jsonb's numeric range, which the converter checks), and at most 1,000 characters:
    nesting then stays within what Python's parser takes (SQLite's goes to 2,000 levels).
    ``built``: the value is a mapping's json_object() over columns, valid and flat by
    construction, so the parse (json_valid, a third of these checks' time) is left out."""
    valid = "" if built else f" AND json_valid({col})"
    return (f"({col} IS NULL OR (typeof({col}) = 'text' AND {_no_nul(col)} AND length({col}) <= 1000 "
            f"AND instr({col}, '\\u') = 0 AND {col} NOT GLOB '*[0-9][eE]*'{valid}))")


def _json_digest(col: str) -> str:
    return f"CASE WHEN {col} IS NULL THEN '\\N' ELSE 'j' END"


def _unpadded(col: str) -> str:
    """NULL, empty, or starting and ending with a printable ASCII character: what Python's
    str.strip() would remove is then absent, so the kind SQLite derives is the converter's."""
    return (f"({col} IS NULL OR {col} = '' OR (unicode({col}) BETWEEN 33 AND 126 "
            f"AND unicode(substr({col}, -1)) BETWEEN 33 AND 126))")


def _heartbeat_kind(col: str) -> str:
    whens = " ".join(f"WHEN '{raw}' THEN '{kind}'" for raw, kind in HEARTBEAT_KIND.items())
    return f"CASE lower({col}) {whens} ELSE 'ok' END"


@dataclass(frozen=True)
class Known:
    """What a mapping's view guarantees (nothing, for a file in the documented layout):
    ``json``: columns it builds with json_object(), valid and flat JSON by construction;
    ``micros``: time column -> the view column with its epoch microseconds for the rows it
    rendered from an in-range epoch number (mapping.micros_column), NULL for the others;
    ``agent_ids``: agent column -> the view column with the agent_id its key resolved to
    (mapping.agent_id_column), NULL for a key without an agent row."""

    json: frozenset[str] = frozenset()
    micros: dict[str, str] = field(default_factory=dict)
    agent_ids: dict[str, str] = field(default_factory=dict)

    def time_ok(self, column: str, col: str) -> str:
        us = self.micros.get(column)
        return _ts_ok(col) if us is None else f"CASE WHEN {us} IS NOT NULL THEN 1 ELSE {_ts_ok(col)} END"

    def time_micros(self, column: str, col: str) -> str:
        us = self.micros.get(column)   # coalesce is lazy in SQLite: the text is parsed only without it
        return _ts_micros(col) if us is None else f"coalesce({us}, {_ts_micros(col)})"

    def agent(self, column: str, col: str) -> str:
        """The agent_id of the name in ``col``: the join's ``a.id``, or with a resolved key the
        view's id, looked up by name (a placeholder's) only when there is none."""
        resolved = self.agent_ids.get(column)
        if resolved is None:
            return "a.id"
        return f"coalesce({resolved}, (SELECT a.id FROM temp.{AGENT_MAP} AS a WHERE {_agent_match(col)}))"  # noqa: S608 - constant names, quoted columns

    def agent_join(self, column: str, col: str) -> str:
        if column in self.agent_ids:
            return ""   # 0.5 s per million rows less than a join that most rows do not need
        return f"LEFT JOIN temp.{AGENT_MAP} AS a ON {_agent_match(col)} "


def _agent_match(col: str) -> str:
    # text only, compared as text: a numeric column's affinity would make '42' = '042'
    return f"typeof({col}) = 'text' AND a.name = CAST({col} AS TEXT)"


@dataclass(frozen=True)
class Plan:
    """The SQLite query for one table. Per row, without a float column: (rowid, day, csv line,
    digest text); with one: (rowid, day, csv head, float, csv tail, digest head, digest tail).
    The line (or head) is a blob only for a plainly clean row with small values (its checks are
    evaluated once, in that CASE, and only such a row is rendered); for any other row it is the
    row's size in bytes, an integer."""

    query: str
    float_col: bool


def _heartbeats(t: dict[str, str], source_id: int, known: Known) -> Plan:
    agent, ts, status, meta = t["agent_id"], t["timestamp"], t["status"], t["metadata"]
    aid = known.agent("agent_id", agent)
    clean = (f"{aid} IS NOT NULL AND {known.time_ok('timestamp', ts)} AND {_text_ok(status)} "
             f"AND {_unpadded(status)} AND {_json_ok(meta, 'metadata' in known.json)}")
    kind = _heartbeat_kind(status)
    line = _printf(f'%d,"%s+00",%s,%s,%s,{source_id},%d\n', aid, ts, kind, _csv(status), _csv(meta), "s.rowid")
    digest = _unless_oversize(_printf(US.join(["%d", "%d", "%d", "%s", "%s", "%s"]), "s.rowid", aid,
                                      known.time_micros('timestamp', ts), kind, _digest_text(status),
                                      _json_digest(meta)), ts, status)
    return Plan(_select(clean, ts, line, None, "''", digest, "''", "agent_heartbeats",
                        known.agent_join("agent_id", agent), (agent, ts, status, meta)), float_col=False)


def _metrics(t: dict[str, str], source_id: int, known: Known) -> Plan:
    ts, agent, name, value, unit, tags = (t[c] for c in ("timestamp", "agent_id", "metric_name", "metric_value",
                                                         "unit", "tags"))
    aid = known.agent("agent_id", agent)
    clean = (f"({agent} IS NULL OR {aid} IS NOT NULL) AND {known.time_ok('timestamp', ts)} AND {name} IS NOT NULL AND {_text_ok(name)} "
             f"AND length({name}) <= {METRIC_NAME_MAX} "
             f"AND typeof({value}) IN ('real', 'integer', 'null') AND {_text_ok(unit)} AND {_json_ok(tags, 'tags' in known.json)}")
    agent_csv = f"coalesce({aid}, '\\N')"
    head = _printf('"%s+00","legacy",%s,"%w",', ts, agent_csv, name)
    tail = _unless_oversize(_printf(f',"imported",%s,%s,{source_id},%d\n', _csv(unit), _csv(tags), "s.rowid"),
                            unit, tags)
    digest_head = _unless_oversize(_printf(US.join(["%d", "%d", "%s", "%s", ""]), "s.rowid",
                                           known.time_micros("timestamp", ts),
                                           agent_csv, name), ts, name)
    digest_tail = _unless_oversize(_printf(US.join(["", "%s", "%s"]), _digest_text(unit), _json_digest(tags)), unit)
    number = f"CASE WHEN typeof({value}) IN ('real', 'integer') THEN {value} END"   # never a long text
    return Plan(_select(clean, ts, head, number, tail, digest_head, digest_tail, "performance_metrics",
                        known.agent_join("agent_id", agent), (ts, agent, name, value, unit, tags)), float_col=True)


def _select(clean: str, ts: str, head: str, value: str | None, tail: str, digest_head: str, digest_tail: str,
            table: str, join: str, cols: tuple[str, ...]) -> str:
    # Names are quoted by qident; every value is a bound parameter or a number. Fewer columns
    # without a float: each fetched value is a Python object made per row. The third column is
    # the rendering (a blob) of a clean row with small values, else the row's size (an integer).
    rest = (f"CAST({digest_head} AS BLOB)" if value is None else
            f"{value}, CAST({tail} AS BLOB), CAST({digest_head} AS BLOB), CAST({digest_tail} AS BLOB)")
    return (f"SELECT s.rowid, CAST(substr({ts}, 1, 10) AS BLOB), "  # noqa: S608
            f"coalesce(CASE WHEN {_small(cols)} AND {clean} THEN CAST({head} AS BLOB) END, {_raw_size(cols)}), "
            f"{rest} FROM {qident(table)} AS s {join}WHERE s.rowid > :after AND s.rowid <= :until ORDER BY s.rowid")


PLANS: dict[str, Callable[[dict[str, str], int, Known], Plan]] = {
    "agent_heartbeats": _heartbeats,
    "performance_metrics": _metrics,
}


def plan_for(source: LegacySource, spec: TableSpec, source_id: int) -> Plan | None:
    """The fast plan for this table, or None (turned off, not one of the two tables, or an
    older file lacking one of its columns: then every row goes through Python)."""
    build = PLANS.get(spec.legacy)
    info = source.tables.get(spec.legacy)
    if build is None or info is None or not enabled() or not set(spec.columns) <= set(info.columns):
        return None
    if not _sqlite_has_functions(source):
        return None
    facts = source.view_facts.get(spec.legacy, ViewFacts())
    known = Known(frozenset(facts.json_built), {c: f"s.{qident(micros_column(c))}" for c in facts.micros},
                  {c: f"s.{qident(agent_id_column(c))}" for c in facts.agent_ids})
    plan = build({c: f"s.{qident(c)}" for c in spec.columns}, int(source_id), known)
    body = source.view_bodies.get(spec.legacy)
    if body is None:
        return plan
    # A table read through a mapping: SQLite would flatten the view into this query and
    # evaluate each mapped expression (a time conversion, a JSON object) once per reference,
    # a dozen times a row. As a co-routine (OFFSET 0 keeps it from being flattened) each is
    # evaluated once; the co-routine scans by rowid from the resume point and the join keeps
    # its order, so the outer ORDER BY (which would sort the whole table first) is left out;
    # FastReader checks the order of every batch.
    head, tail = f"FROM {qident(spec.legacy)} AS s ", "WHERE s.rowid > :after AND s.rowid <= :until ORDER BY s.rowid"
    inner = f"FROM ({body} WHERE s.rowid > :after AND s.rowid <= :until ORDER BY s.rowid LIMIT -1 OFFSET 0) AS s "
    query = plan.query[:-len(tail)].replace(head, inner) if plan.query.endswith(tail) else ""
    if query.count(inner) != 1:   # never the view read flattened, whole and unordered
        raise RuntimeError(f"{spec.legacy}: unexpected plan shape")
    return Plan(query, plan.float_col)


def _sqlite_has_functions(source: LegacySource) -> bool:
    """The SQLite library Python links may lack JSON1 (built in only since 3.38) or be old:
    without the functions the plans use, every row goes through the converters instead."""
    try:
        row = source.conn.execute(
            "SELECT json_valid('[1]'), json_valid('{a:1}'), json_valid('[1,]'), json_valid('NaN'), "
            "printf('\"%w\"', 'a\"b'), unicode('a'), instr(x'00', x'00'), datetime('2025-02-30', '+0 days'), "
            "strftime('%s', '2025-01-01T00:00:00')").fetchone()
    except sqlite3.Error:
        return False
    # RFC 8259 only (SQLite 3.42-3.44 may take JSON5 in json_valid), and the rest as relied on.
    return row == (1, 0, 0, 0, '"a""b"', 97, 1, "2025-03-02 00:00:00", "1735689600")


class FastReader:
    """Batches of one table from its resume point: clean rows rendered by SQLite, the others
    handed to ``convert_slow`` (the per-value converters) with their original values."""

    def __init__(self, source: LegacySource, spec: TableSpec, ctx: Context, plan: Plan,
                 convert_slow: Callable[[list[tuple]], Batch]) -> None:
        if spec.staged or spec.unique is not None:   # batches here carry no per-row digests
            raise ValueError(f"{spec.legacy}: the set-based path is only for direct COPY without conflicts")
        self.source, self.spec, self.plan, self.convert_slow = source, spec, plan, convert_slow
        load_agent_map(source, ctx.agents)

    def batches(self, after_rowid: int, size: int, until_rowid: int = LAST_ROWID) -> Iterator[Batch]:
        """Batches of at most ``size`` rows and about ``MAX_BATCH_BYTES`` of rendered text and
        rows read for the converters, from the rows after ``after_rowid`` up to ``until_rowid``.

        Rows are fetched and rendered in chunks, and the bytes are counted per chunk from what
        the chunk rendered (``LegacySource.batches`` counts every value of every row in Python,
        2 us a row: more than SQLite's rendering of a heartbeat). A chunk is sized from the
        largest row seen so far, starting with one row; its rows that are not clean are read in
        groups of at most half a batch's bytes, by the sizes SQLite returned for them."""
        cursor = self.source.execute(self.plan.query, {"after": after_rowid, "until": until_rowid})  # type: ignore[arg-type]
        step, parts, rows_in, bytes_in, last = 1, [], 0, 0, after_rowid
        while rows := self.source.fetch(cursor, min(step, size - rows_in)):
            rowids = [last, *map(_first, rows)]   # resume points rely on the order, across chunks too
            if not all(map(operator.lt, rowids, islice(rowids, 1, None))):
                raise RuntimeError(f"{self.spec.legacy}: legacy rows came back repeated or out of rowid order")
            last = rowids[-1]
            largest = 0
            for group in _groups(rows):
                part, group_largest, group_bytes = self._chunk(group)
                largest = max(largest, group_largest)
                parts.append(part)
                rows_in += part.read
                bytes_in += group_bytes
                if rows_in >= size or bytes_in >= MAX_BATCH_BYTES:
                    yield _joined(parts)
                    parts, rows_in, bytes_in = [], 0, 0
            step = max(1, min(_CHUNK_ROWS, MAX_BATCH_BYTES // (8 * largest)))
        if parts:
            yield _joined(parts)

    def _chunk(self, rows: list[tuple]) -> tuple[Batch, int, int]:
        """One group of rows (in rowid order, checked by ``batches``) as a batch, the most bytes
        one of its rows held, and its bytes."""
        # Clean and small: rendered (a blob); otherwise the row's size (an integer).
        clean = [r for r in rows if r[2].__class__ is bytes]
        others = [] if len(clean) == len(rows) else [r for r in rows if r[2].__class__ is not bytes]
        sizes, slow = list(map(_third, others)), list(map(_first, others))
        if self.plan.float_col:
            lines = [h + (b"\\N" if v is None else repr(float(v)).encode()) + t for _, _, h, v, t, _, _ in clean]
        else:
            lines = list(map(_third, clean))
        payload = b"".join(lines)
        try:
            payload.decode("utf-8")
        except UnicodeDecodeError:   # rare: find the rows with invalid UTF-8, the converters reject them
            keep = []
            for row, line in zip(clean, lines, strict=True):
                try:
                    line.decode("utf-8")
                    keep.append((row, line))
                except UnicodeDecodeError:
                    slow.append(row[0])
            clean, lines, slow = [r for r, _ in keep], [line for _, line in keep], sorted(slow)
            payload = b"".join(lines)
        if self.plan.float_col:
            total = _digest_sum([dh + (b"\\N" if v is None else _pack(float(v)).hex().encode()) + dt
                                 for _, _, _, v, _, dh, dt in clean])
        else:
            total = _digest_sum(list(map(_fourth, clean)))
        # The most a row held: twice its line covers its digest text (never longer than the
        # line); a row that is not clean, by the size SQLite returned for it.
        largest = max(max(map(len, lines), default=0) * 2, max(sizes, default=0))
        batch = Batch(read=len(clean), last_rowid=rows[-1][0], ids=list(map(_first, clean)), payload=payload,
                      digest_total=total, rejects=[], days={date.fromisoformat(d.decode()) for d in set(map(_second, clean))})
        if slow:
            batch.merge(self.convert_slow(self._raw_rows(slow)))
        return batch, largest + 16 * len(rows[0]), len(payload) + sum(sizes) + 16 * len(rows)

    def _raw_rows(self, rowids: list[int]) -> list[tuple]:
        """The rows as the converters read them (``LegacySource.select_capped``)."""
        out: list[tuple] = []
        for i in range(0, len(rowids), _SLOW_CHUNK):
            cursor = self.source.select_capped(self.spec.legacy, list(self.spec.columns),
                                               rowids=rowids[i:i + _SLOW_CHUNK])
            for rows in self.source.batches(cursor, _SLOW_CHUNK):
                out += rows
        return out


def _groups(rows: list[tuple]) -> list[list[tuple]]:
    """The chunk as one group, or, when the rows that are not clean hold more than half a
    batch, as consecutive groups of at most that many bytes each (at least one row)."""
    if sum(r[2] for r in rows if r[2].__class__ is not bytes) <= MAX_BATCH_BYTES // 2:
        return [rows]
    groups: list[list[tuple]] = [[]]
    held = 0
    for r in rows:
        size = r[2] if r[2].__class__ is not bytes else 2 * len(r[2])
        if groups[-1] and held + size > MAX_BATCH_BYTES // 2:
            groups.append([])
            held = 0
        groups[-1].append(r)
        held += size
    return groups


_first, _second, _third, _fourth = (operator.itemgetter(i) for i in range(4))
_LOW_NIBBLE = bytes(b & 15 for b in range(256))


def _digest_sum(texts: list[bytes]) -> int:
    """The sum of digest.md5_60 over ``texts``: the first 8 bytes of each MD5 read as one
    struct.unpack and shifted in one step (the sum of v >> 4 is (sum of v - sum of v & 15) >> 4),
    rather than an int made and shifted per row."""
    md5 = hashlib.md5
    heads = b"".join([md5(t, usedforsecurity=False).digest()[:8] for t in texts])
    return (sum(struct.unpack(f">{len(texts)}Q", heads)) - sum(heads[7::8].translate(_LOW_NIBBLE))) >> 4


def _joined(parts: list[Batch]) -> Batch:
    """The chunks of one batch as one (payloads joined once, not appended chunk by chunk)."""
    first = parts[0]
    if len(parts) == 1:
        return first
    batch = Batch(read=0, last_rowid=first.last_rowid, ids=[], payload=b"", digest_total=0, rejects=[])
    payloads = []
    for part in parts:
        payloads.append(part.payload)
        part.payload = b""
        batch.merge(part)
    batch.payload = b"".join(payloads)
    return batch
