"""A legacy file comes from elsewhere: its schema may call no unsafe function, and a value too
long to hold stays in the file while its row is rejected with the reason, the other rows of the
table migrating. Both reading paths (rendered by SQLite, per-value converters) are checked."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agents_pipeline.defs.migration import fastpath
from agents_pipeline.defs.migration.runner import migrate_sqlite
from agents_pipeline.defs.migration.source import LegacyFileError, LegacySource
from agents_pipeline.defs.migration.values import MAX_VALUE_BYTES
from agents_pipeline_tests.migration.legacy_files import SCHEMA

BIG = MAX_VALUE_BYTES + 1
TS = "2025-01-20T10:00:0{}"


def _file(path: Path) -> Path:
    """Clean rows around one oversize value per table, in text and in blob form."""
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA)
    conn.execute("INSERT INTO agents (agent_id, agent_name) VALUES ('alpha', 'Alpha')")
    conn.executemany("INSERT INTO agent_heartbeats (id, agent_id, timestamp, status, metadata) VALUES (?, ?, ?, ?, ?)", [
        (1, "alpha", TS.format(1), "healthy", '{"load": 0.5}'),
        (2, "alpha", TS.format(2), "x" * BIG, None),                              # long status
        (3, "alpha", TS.format(3), "healthy", None),
        (4, "alpha", TS.format(4), "healthy", '{"a": "' + "y" * BIG + '"}'),      # long JSON
    ])
    conn.executemany("INSERT INTO performance_metrics (id, timestamp, agent_id, metric_name, metric_value, unit, tags) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?)", [
                         (1, TS.format(1), "alpha", "cpu_percent", 12.5, "%", None),
                         (2, TS.format(2), "alpha", "m" * BIG, 1.0, None, None),   # long name
                         (3, TS.format(3), None, "memory_mb", 3.0, None, b"\x01" * BIG),   # long blob
                         (4, TS.format(4), None, "memory_mb", 4.0, "MB", "{}"),
                         (5, TS.format(5), None, "n" * 5000, 5.0, None, None),     # over the API's 200
                     ])
    conn.executemany("INSERT INTO llm_conversations (id, agent_id, prompt, response, created_at) VALUES (?, ?, ?, ?, ?)", [
        (1, "alpha", "hello", "hi", TS.format(1)),
        (2, "alpha", "p" * BIG, "r" * (BIG + 5), TS.format(2)),                  # two long texts
        (3, "alpha", "bye", None, TS.format(3)),
    ])
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)")
    conn.executemany("INSERT INTO notes VALUES (?, ?)", [(1, b"small"), (2, b"\x00" * BIG), (3, None)])
    conn.execute("CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
    conn.executemany("INSERT INTO settings VALUES (?, ?)", [("a", "1"), ("b", "v" * BIG), ("c", "3")])
    conn.commit()
    conn.close()
    return path


@pytest.mark.parametrize("fast", ["1", "0"])
def test_an_oversize_value_rejects_its_row_and_the_others_migrate(tmp_path, db_url, query, monkeypatch, fast):
    """Regression: a value of any size (SQLite allows 1 GB) was read into Python, several copies
    of it (and the fast path rendered it into CSV), so one hostile row could exhaust the
    memory or abort the whole read. Now a value over MAX_VALUE_BYTES is left in the file by
    the reading query, its row is rejected naming the column and its size, and the table's other
    rows migrate, verified, on both paths (AGENTS_PIPELINE_MIGRATION_FAST_PATH=0 and default)."""
    monkeypatch.setenv(fastpath.ENV, fast)
    path = _file(tmp_path / "big.db")
    longest: list[int] = [0]
    fetch = LegacySource.fetch

    def measured(self, cursor, size):       # every row read from the file, by either path
        rows = fetch(self, cursor, size)
        longest[0] = max([longest[0], *(len(v) for r in rows for v in r if isinstance(v, str | bytes))])
        return rows

    monkeypatch.setattr(LegacySource, "fetch", measured)
    handed: list[int] = []
    raw_rows = fastpath.FastReader._raw_rows
    monkeypatch.setattr(fastpath.FastReader, "_raw_rows", lambda self, ids: handed.extend(ids) or raw_rows(self, ids))

    report = migrate_sqlite(path, db_url, parallel=False)

    assert report.ok, report.to_markdown()
    assert 0 < longest[0] < 10_000     # no value over the limit (nor a rendering of one) reached Python
    counts = {t.table: (t.written, t.rejected) for t in report.tables if t.read}
    assert counts == {"agents": (1, 0), "agent_heartbeats": (2, 2), "performance_metrics": (2, 3),
                      "llm_conversations": (2, 1), "notes": (2, 1), "settings": (2, 1)}
    if fast == "1":   # the long rows were handed to the converters, not rendered by SQLite
        assert {2, 4} <= set(handed) and 1 not in handed
    rejects = query("SELECT table_name, legacy_id, reason, original, types FROM fleet.legacy_rejects "
                    "ORDER BY table_name, legacy_id")
    size = f"'{BIG:,}'"
    expected = [
        ("agent_heartbeats", 2, f"status: text of {size} bytes", "status", "text"),
        ("agent_heartbeats", 4, f"metadata: text of '{BIG + 9:,}' bytes", "metadata", "text"),
        ("legacy.notes", 2, f"body: blob of {size} bytes", "body", "blob"),
        ("legacy.settings", 2, f"v: text of {size} bytes", "v", "text"),
        ("llm_conversations", 2, f"prompt: text of {size} bytes; response: text of '{BIG + 5:,}' bytes",
         "prompt", "text"),
        ("performance_metrics", 2, f"metric_name: text of {size} bytes", "metric_name", "text"),
        ("performance_metrics", 3, f"tags: blob of {size} bytes", "tags", "blob"),
    ]
    assert [(t, i) for t, i, *_ in rejects] == [(t, i) for t, i, *_ in expected] + [("performance_metrics", 5)]
    # A metric name longer than the live API's 200 characters, which no index entry could hold:
    # rejected with its reason instead of failing the whole batch's COPY.
    assert rejects.pop()[2] == "metric_name: text of '5,000' characters is longer than the 200 the live API accepts"
    for (_, _, reason, original, types), (_, _, words, column, kind) in zip(rejects, expected, strict=True):
        assert reason.startswith(words) and f"over the limit of {MAX_VALUE_BYTES:,} bytes" in reason
        assert original[column] is None and types[column] == kind      # the value stayed in the file
    # The other values of a rejected row are kept, for the operator to see.
    assert rejects[0][3]["timestamp"] == TS.format(2) and rejects[0][3]["agent_id"] == "alpha"
    assert query("SELECT legacy_id FROM fleet.heartbeats ORDER BY 1") == [(1,), (3,)]
    assert query("SELECT legacy_id FROM fleet.llm_conversations ORDER BY 1") == [(1,), (3,)]
    notes = query("SELECT id, body FROM legacy.notes ORDER BY 1")
    assert [(i, None if b is None else bytes(b)) for i, b in notes] == [(1, b"small"), (3, None)]
    assert query("SELECT k FROM legacy.settings ORDER BY 1") == [("a",), ("c",)]
    again = migrate_sqlite(path, db_url, parallel=False)        # a re-run adds nothing, still verified
    assert again.ok and query("SELECT count(*) FROM fleet.legacy_rejects") == [(8,)]


def test_the_import_reads_with_trusted_schema_off(legacy_file):
    """Regression: the legacy file was opened with SQLite's default trusted_schema=ON, under which
    the file's own generated columns, views, triggers and indexes may call any function the
    connection has. Every connection the import opens on a legacy file now has it OFF."""
    with LegacySource(legacy_file) as opened:
        assert opened.conn.execute("PRAGMA trusted_schema").fetchone() == (0,)


def test_a_schema_calling_an_unsafe_function_is_refused(tmp_path):
    """With trusted_schema ON, a generated column calling a non-innocuous function runs it on
    every read; with it OFF the file is refused, naming the function."""
    path = tmp_path / "hostile.db"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA.replace("    is_enabled      INTEGER DEFAULT 1           -- 0 or 1\n",
                                      "    is_enabled      INTEGER DEFAULT 1,\n"
                                      "    g TEXT GENERATED ALWAYS AS (json('{}')) VIRTUAL\n"))
    conn.execute("INSERT INTO agents (agent_id, agent_name) VALUES ('a', 'A')")
    conn.commit()
    conn.close()
    probe = sqlite3.connect(path)
    probe.execute("PRAGMA trusted_schema = OFF")
    try:
        probe.execute("SELECT count(*) FROM agents").fetchone()
        pytest.skip(f"SQLite {sqlite3.sqlite_version} treats json() as innocuous: nothing to refuse")
    except sqlite3.DatabaseError:
        pass
    finally:
        probe.close()
    with pytest.raises(LegacyFileError, match=r"unsafe use of json\(\).*not run on a file from elsewhere"):
        migrate_sqlite(path, None, dry_run=True)
