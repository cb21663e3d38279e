"""The set-based path (SQLite renders clean rows) stores exactly what the per-value converters
store: the same rows, the same rejects with the same reasons, the same checksums; and it
hands every row it cannot vouch for to the converters."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agents_pipeline.defs.migration import fastpath
from agents_pipeline.defs.migration.runner import migrate_sqlite
from agents_pipeline_tests.migration.conftest import snapshot
from agents_pipeline_tests.migration.legacy_files import SCHEMA

AGENTS = ("alpha", "beta", "Alpha ", "agent-\u00e9")
TIMES = [
    "2025-01-20T10:00:00", "2025-01-20 10:00:00", "2025-01-20T10:00:00.1", "2025-01-20T10:00:00.12",
    "2025-01-20T10:00:00.123", "2025-01-20T10:00:00.1234", "2025-01-20T10:00:00.12345",
    "2025-01-20T10:00:00.123456", "2025-01-20T10:00:00.1234567", "2025-01-20T10:00:00.", "2025-01-20T10:00:00Z",
    "2025-01-20T12:00:00+02:00", "2024-02-29T00:00:00", "2025-02-29T00:00:00", "2025-04-31T00:00:00",
    "2025-01-31T23:59:59", "2025-13-01T00:00:00", "2025-00-10T00:00:00", "2025-01-00T00:00:00",
    "2025-01-20T24:00:00", "2025-01-20T23:60:00", "2025-01-20T23:59:60", "1999-12-31T23:59:59",
    "2099-12-31T23:59:59.999999", "2100-01-01T00:00:00", " 2025-01-20T10:00:00", "2025-01-20t10:00:00",
    "2025-01-20T10:00:00.12a", "２０２５-01-20T10:00:00", 1737367200, 1737367200.5, "1737367200", "",
    "2025-01-20T10:00:00\x00junk", "2025-01-20T10:00:00.12\x00",
]
STATUSES = [
    "healthy", "ERROR", "Failed", " error", "error ", "error\t", "\u00a0error", "error\u3000", "starting", "stopped",
    "", None, "LOG", "fail\u212a", "heal\"thy", "a,b", "line\nbreak", "back\\slash", "\\N", "caf\u00e9", "ok\x00x",
    "\x01", 42, 4.5,
]
METADATA = [
    None, "", "  ", '{"load": 0.5}', ' {"a": [1, 2, {"b": null}]} ', "[]", "5", '"text"', '{"a": "\\u00e9"}',
    '{"a": "\\u0000"}', '{"a": "\\ud800"}', "{'a': True}", '{"a": 1', '{"a": NaN}', '{"a": 1e999}',
    '{"a": "x\ty"}', '{"a": "\u00e9\u4e2d"}', '{"a": "quote\\"d"}', "not json", "[1e-20000]", '{"a": 1e5}',
    "[" * 600 + "]" * 600, '{"n": ' + "1" * 990 + "}",
]
VALUES = [12.5, 0.0, -0.0, 1e-300, 5e-324, 1.7976931348623157e308, float("inf"), float("-inf"), 2 ** 53 + 1, 7, -3,
          None, "N/A", "12.5%", "abc", "", 0.1, 1 / 3, 123456789.123456789]
UNITS = ["%", None, "", "ms", "caf\u00e9", "\x00", "quote\"s"]


def _file(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.executemany("INSERT INTO agents (agent_id, agent_name) VALUES (?, ?)", [(a, a) for a in AGENTS])
    rows = []
    n = 0
    for ts in TIMES:
        for status in STATUSES:
            n += 1
            rows.append((AGENTS[n % len(AGENTS)] if n % 17 else "ghost", ts, status, METADATA[n % len(METADATA)]))
    rows.append(("alpha", "2025-01-20T10:00:00", "ok", '{"bad": "\xff"}'))
    rows.append(("beta", "2025-01-20T10:00:00.123", "ERROR", '{"load": 0.5}'))   # plainly clean
    conn.executemany("INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata) VALUES (?, ?, ?, ?)", rows)
    conn.execute("INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata) "
                 "VALUES ('alpha', '2025-01-20T10:00:00', CAST(X'6f6bff' AS TEXT), NULL)")   # invalid UTF-8
    conn.execute("INSERT INTO agent_heartbeats (agent_id, timestamp, status, metadata) "
                 "VALUES (X'616c706861', '2025-01-20T10:00:00', 'healthy', NULL)")           # name as a blob
    metrics = []
    for i, ts in enumerate(TIMES):
        for j, value in enumerate(VALUES):
            metrics.append((ts, None if (i + j) % 5 == 0 else AGENTS[(i + j) % len(AGENTS)], f"m{j % 3}", value,
                            UNITS[(i + j) % len(UNITS)], METADATA[(i * 7 + j) % len(METADATA)]))
    metrics.append(("2025-01-20T10:00:00", "alpha", 17, 1.0, None, None))   # a number as the name
    conn.executemany("INSERT INTO performance_metrics (timestamp, agent_id, metric_name, metric_value, unit, tags) "
                     "VALUES (?, ?, ?, ?, ?, ?)", metrics)
    conn.commit()
    conn.close()
    return path


def _reset(query) -> None:
    query("TRUNCATE fleet.heartbeats, fleet.perf_samples, fleet.legacy_rejects, fleet.legacy_progress, "
          "fleet.legacy_runs, fleet.agents, fleet.legacy_user_tables, fleet.legacy_sources RESTART IDENTITY CASCADE")


@pytest.mark.parametrize("batch_size", [7, 20_000])
def test_both_paths_store_the_same_rows_rejects_and_checksums(tmp_path, db_url, query, monkeypatch, batch_size):
    path = _file(tmp_path / "edge.db")
    slow_rows: list[int] = []
    original = fastpath.FastReader._raw_rows

    def spy(self, rowids):
        slow_rows.extend(rowids)
        return original(self, rowids)

    monkeypatch.setattr(fastpath.FastReader, "_raw_rows", spy)
    fast = migrate_sqlite(path, db_url, batch_size=batch_size, parallel=False)
    assert fast.ok, fast.to_markdown()
    fast_rows = snapshot(query)
    _reset(query)
    monkeypatch.setenv(fastpath.ENV, "0")
    python = migrate_sqlite(path, db_url, batch_size=batch_size, parallel=False)
    assert python.ok, python.to_markdown()
    assert snapshot(query) == fast_rows
    heartbeats = len(TIMES) * len(STATUSES) + 4
    metrics = len(TIMES) * len(VALUES) + 1
    rows = {t.table: t for t in fast.tables}
    assert rows["agent_heartbeats"].read == heartbeats and rows["performance_metrics"].read == metrics
    # Both paths did real work: over a hundred rows rendered by SQLite, the odd ones handed over.
    assert 100 < len(slow_rows) < heartbeats + metrics - 100
    assert rows["agent_heartbeats"].rejected > 100 and rows["agent_heartbeats"].written > 100
    assert [(t.table, t.written, t.rejected, t.reasons) for t in fast.tables] == \
        [(t.table, t.written, t.rejected, t.reasons) for t in python.tables]


def test_a_numeric_agent_column_matches_names_as_text(tmp_path, db_url, query, monkeypatch):
    """A file whose agent_id column has numeric affinity: SQLite would compare '42' and '042'
    as the number 42; the lookup compares text, and numbers go to the converters."""
    path = tmp_path / "numeric.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.replace("    agent_id    TEXT NOT NULL,\n    timestamp   TEXT NOT NULL,",
                                      "    agent_id    NUMERIC NOT NULL,\n    timestamp   TEXT NOT NULL,"))
    conn.executemany("INSERT INTO agents (agent_id, agent_name) VALUES (?, ?)", [("42", "a"), ("042", "b"), ("x", "c")])
    conn.executemany("INSERT INTO agent_heartbeats (agent_id, timestamp, status) VALUES (?, ?, 'ok')",
                     [(42, "2025-01-20T10:00:00"), ("042", "2025-01-20T10:00:01"), (42.5, "2025-01-20T10:00:02"),
                      ("x", "2025-01-20T10:00:03")])
    conn.commit()
    assert conn.execute("SELECT group_concat(typeof(agent_id)) FROM agent_heartbeats").fetchone() == (
        "integer,integer,real,text",)
    conn.close()
    fast = migrate_sqlite(path, db_url, parallel=False)
    assert fast.ok, fast.to_markdown()
    fast_rows = snapshot(query)
    _reset(query)
    monkeypatch.setenv(fastpath.ENV, "0")
    assert migrate_sqlite(path, db_url, parallel=False).ok
    assert snapshot(query) == fast_rows
    # 42 and '042' (stored as 42) are agent '42', never '042'; 42.5 got a placeholder agent
    assert [r[0] for r in fast_rows["heartbeats"]] == ["42", "42", "42.5", "x"]


def test_clean_rows_take_the_set_based_path(tmp_path, db_url, query, monkeypatch):
    """A plain row is never handed to the converters, and lands with the right values."""
    path = _file(tmp_path / "edge.db")
    handed: list[int] = []
    monkeypatch.setattr(fastpath.FastReader, "_raw_rows", lambda self, ids: handed.extend(ids) or [])
    conn = sqlite3.connect(path)
    clean = conn.execute("SELECT rowid FROM agent_heartbeats WHERE timestamp = '2025-01-20T10:00:00.123' "
                         "AND status = 'ERROR' AND agent_id = 'beta' AND metadata = '{\"load\": 0.5}'").fetchall()
    conn.close()
    assert clean
    migrate_sqlite(path, db_url, batch_size=50, parallel=False)   # the spy sees this process only
    assert not {r for (r,) in clean} & set(handed)
    stored = query("SELECT received_at::text, kind, message, payload::text FROM fleet.heartbeats "
                   "WHERE legacy_id = %s", (clean[0][0],))
    assert stored == [("2025-01-20 10:00:00.123+00", "fail", "ERROR", '{"load": 0.5}')]


def test_the_fast_path_can_be_turned_off(tmp_path, monkeypatch):
    path = _file(tmp_path / "edge.db")
    from agents_pipeline.defs.migration.source import LegacySource
    from agents_pipeline.defs.migration.tables import KNOWN

    with LegacySource(path) as source:
        assert fastpath.plan_for(source, KNOWN["agent_heartbeats"], 1) is not None
        assert fastpath.plan_for(source, KNOWN["system_alerts"], 1) is None
        monkeypatch.setenv(fastpath.ENV, "0")
        assert fastpath.plan_for(source, KNOWN["agent_heartbeats"], 1) is None


def test_a_sqlite_without_the_functions_falls_back_to_the_converters(tmp_path, monkeypatch):
    """A SQLite library without JSON1 (or too old for a function the plans use) is not an
    error: every row then goes through the per-value converters."""
    path = _file(tmp_path / "edge.db")
    from agents_pipeline.defs.migration.source import LegacySource
    from agents_pipeline.defs.migration.tables import KNOWN

    def missing(_value: object) -> int:
        raise ValueError("no JSON1 in this build")

    with LegacySource(path) as source:
        assert fastpath.plan_for(source, KNOWN["agent_heartbeats"], 1) is not None
        source.conn.create_function("json_valid", 1, missing)   # every call fails, as a missing one would
        assert fastpath.plan_for(source, KNOWN["agent_heartbeats"], 1) is None


def test_bulk_digest_sum_equals_the_per_row_digests():
    """The set-based path sums digests in one struct.unpack; verification compares that sum with
    PostgreSQL's per-row md5_60, so the two must agree exactly, low nibbles and carries included."""
    from agents_pipeline.defs.migration.digest import md5_60

    texts = [b"", b"\x1f", "Grüße\x1f\\N".encode(), *(f"{i}\x1f{i * 7919}\x1fok".encode() for i in range(5000))]
    assert fastpath._digest_sum(texts) == sum(md5_60(t) for t in texts)
    assert fastpath._digest_sum([]) == 0


@pytest.mark.parametrize("order", ["DESC", "repeated"])
def test_rows_out_of_rowid_order_stop_the_read(tmp_path, order):
    """Resume points are the last rowid of a committed batch: a read that came back in any other
    order (within a chunk or across chunks) must fail, not skip or double rows."""
    from datetime import UTC, datetime

    from agents_pipeline.defs.migration.copydata import Batch
    from agents_pipeline.defs.migration.source import LegacySource
    from agents_pipeline.defs.migration.tables import KNOWN, Context

    path = _file(tmp_path / "edge.db")
    with LegacySource(path) as source:
        spec = KNOWN["agent_heartbeats"]
        plan = fastpath.plan_for(source, spec, 1)
        assert plan is not None and plan.query.endswith("ORDER BY s.rowid")
        base = plan.query.removesuffix(" ORDER BY s.rowid")
        query = (plan.query + " DESC" if order == "DESC" else   # 1, 2, 2, 3, ...
                 f"SELECT * FROM ({base}) UNION ALL "  # noqa: S608 - the module's own plan
                 f"SELECT * FROM ({base.replace('s.rowid > :after', 's.rowid = 2')}) ORDER BY 1")
        ctx = Context(source_id=1, source_name="edge", now=datetime.now(UTC), agents={a: i for i, a in enumerate(AGENTS, 1)})
        reader = fastpath.FastReader(source, spec, ctx, fastpath.Plan(query, plan.float_col),
                                     lambda rows: Batch(read=len(rows), last_rowid=0, ids=[], payload=b"",
                                                        digest_total=0, rejects=[]))
        with pytest.raises(RuntimeError, match="repeated or out of rowid order"):
            list(reader.batches(0, 20_000))
