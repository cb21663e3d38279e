"""Files as users bring them: WAL mode with rows only in the -wal file, and Chinook, a real
SQLite database of someone else's tables, copied with every value equal."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import psycopg2
from psycopg2 import sql

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.defs.migration.runner import migrate_sqlite
from agents_pipeline_tests.migration.conftest import DATA
from agents_pipeline_tests.migration.legacy_files import make_legacy_file


def test_wal_rows_only_in_the_wal_file_are_migrated(tmp_path: Path, db_url, query):
    """Regression: immutable=1 (or copying only the main file's pages) misses committed rows
    that still live in the -wal file; mode=ro reads them."""
    live = tmp_path / "live"
    live.mkdir()
    path = make_legacy_file(live / "background_agents.db", extra_table=False)
    writer = sqlite3.connect(path)
    assert writer.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    writer.executemany("INSERT INTO agent_heartbeats (agent_id, timestamp, status) VALUES ('alpha', ?, 'healthy')",
                       [(f"2025-03-01T00:00:{s:02d}",) for s in range(30)])
    writer.commit()
    # The file as a user would bring it: main file and -wal copied while the writer is open.
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(path, copy / path.name)
    shutil.copy(Path(f"{path}-wal"), copy / f"{path.name}-wal")
    writer.close()
    main_only = sqlite3.connect(f"file:{copy / path.name}?immutable=1", uri=True)
    assert main_only.execute("SELECT count(*) FROM agent_heartbeats WHERE timestamp LIKE '2025-03-01%'").fetchone() == (0,)
    main_only.close()

    report = migrate_sqlite(copy / path.name, db_url)
    assert report.ok and report.journal_mode == "wal"
    assert query("SELECT count(*) FROM fleet.heartbeats WHERE received_at >= '2025-03-01'") == [(30,)]
    assert Path(f"{copy / path.name}-wal").exists()  # read-only: the -wal file was not checkpointed away


def _sqlite_rows(path: Path, table: str, order: list[str]) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        cols = ", ".join(f'"{c}"' for c in order)
        return conn.execute(f'SELECT * FROM "{table}" ORDER BY {cols}').fetchall()  # noqa: S608 - fixture names
    finally:
        conn.close()


def test_chinook_round_trips_with_every_value_equal(tmp_path: Path, db_url, query):
    path = tmp_path / "chinook.sqlite"
    shutil.copy(DATA / "chinook.sqlite", path)
    report = migrate_sqlite(path, db_url)
    assert report.ok, report.to_markdown()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                         "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    pks = {t: [r[1] for r in sorted(conn.execute(f'PRAGMA table_info("{t}")').fetchall(), key=lambda r: r[5]) if r[5]]
           for t in tables}
    conn.close()
    assert len(tables) == 11
    compared = 0
    for table in tables:
        expected = _sqlite_rows(path, table, pks[table])
        statement = sql.SQL("SELECT * FROM {} ORDER BY {}").format(
            sql.Identifier("legacy", table), sql.SQL(", ").join(map(sql.Identifier, pks[table])))
        pg = psycopg2.connect(**connect_kwargs(db_url))
        try:
            with pg.cursor() as cur:
                cur.execute(statement)
                actual = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cur.fetchall()]
        finally:
            pg.close()
        assert len(actual) == len(expected), table
        for want, got in zip(expected, actual, strict=True):
            assert want == got, (table, want, got)
            assert all(type(w) is type(g) or {type(w), type(g)} <= {int, float} for w, g in zip(want, got, strict=True)
                       if w is not None)
            compared += 1
    assert compared == sum(t.source_rows for t in report.tables) > 15000
    # keys and NOT NULL survive
    assert query("SELECT count(*) FROM information_schema.table_constraints WHERE table_schema = 'legacy' "
                 "AND constraint_type = 'PRIMARY KEY'") == [(11,)]
    assert query("SELECT is_nullable FROM information_schema.columns WHERE table_schema = 'legacy' "
                 "AND table_name = 'Track' AND column_name = 'Name'") == [("NO",)]
