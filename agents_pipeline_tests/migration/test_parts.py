"""A big history table loaded as rowid ranges side by side: the same rows, rejects and checksums as
one worker, and a killed split run resumes the same ranges in either mode."""

from __future__ import annotations

import json
import signal
import sqlite3

import pytest

from agents_pipeline.defs.migration import fastpath
from agents_pipeline.defs.migration.parts import PART_ROWS_ENV, Part, ranges_wanted
from agents_pipeline.defs.migration.source import FIRST_ROWID, LegacySource
from agents_pipeline_tests.migration.conftest import snapshot
from agents_pipeline_tests.migration.legacy_files import HOSTILE
from agents_pipeline_tests.migration.test_kill import _bigger_file, _run_cli, reference  # noqa: F401 - fixture

MERGED_PROGRESS = ("SELECT table_name, max(last_rowid), sum(rows_read)::bigint, sum(rows_written)::bigint, "
                   "sum(rows_rejected)::bigint, sum(checksum) FROM fleet.legacy_progress "
                   "GROUP BY table_name ORDER BY table_name")


def _same_as_one_worker(query, reference) -> None:  # noqa: F811 - the fixture's value
    """Everything equals the unsplit reference run, the progress rows summed over the parts."""
    now = snapshot(query, (HOSTILE,))
    assert {k: v for k, v in now.items() if k != "progress"} == {k: v for k, v in reference.items() if k != "progress"}
    assert query(MERGED_PROGRESS) == reference["progress"]


def _parts(query, table: str) -> list[tuple]:
    return query("SELECT part, first_rowid, completed_at IS NOT NULL FROM fleet.legacy_progress "
                 "WHERE table_name = %s ORDER BY part", (table,))


def test_ranges_only_where_cores_would_idle(tmp_path, monkeypatch):
    """Three tables keep 2 cores busy: no split (it measured slower there). With 8 cores the
    biggest table gets the spare ones, about PART_ROWS rows a range; the setting splits anyway."""
    path = tmp_path / "spans.db"
    conn = sqlite3.connect(path)
    for table, last in (("agent_heartbeats", 2_000_000), ("performance_metrics", 1_000_000), ("llm_conversations", 9e6)):
        conn.execute(f"CREATE TABLE {table} (x)")
        conn.executemany(f"INSERT INTO {table} (rowid, x) VALUES (?, 0)", [(1,), (int(last),)])  # noqa: S608
    conn.commit()
    conn.close()
    tables = ["agent_heartbeats", "performance_metrics", "llm_conversations"]
    with LegacySource(path) as source:
        assert ranges_wanted(source, tables, cores=2) == dict.fromkeys(tables, 1)
        assert ranges_wanted(source, tables, cores=8) == {**dict.fromkeys(tables, 1), "agent_heartbeats": 3}
        assert ranges_wanted(source, tables, cores=64) == ranges_wanted(source, tables, cores=8)   # MAX_WORKERS
        monkeypatch.setenv(PART_ROWS_ENV, "500000")   # whatever the cores, within MAX_WORKERS processes
        assert ranges_wanted(source, tables, cores=2) == {**dict.fromkeys(tables, 1), "agent_heartbeats": 3}
    assert Part("agent_heartbeats", 1, 40, None).label == "agent_heartbeats part 2"
    assert Part("agent_heartbeats").label == "agent_heartbeats"


@pytest.mark.parametrize("fast_path", ["1", "0"])   # ranges read by SQLite's rendering, or by the converters
def test_split_side_by_side_run_equals_one_worker(fast_path, tmp_path, db_url, query, reference,  # noqa: F811
                                                  monkeypatch):
    monkeypatch.setenv(PART_ROWS_ENV, "20")
    monkeypatch.setenv(fastpath.ENV, fast_path)
    path = _bigger_file(tmp_path / "background_agents.db")
    run = _run_cli(path, db_url, None, "--side-by-side")
    assert run.returncode == 0, run.stderr + run.stdout
    report = json.loads(run.stdout)
    heartbeats = next(t for t in report["tables"] if t["table"] == "agent_heartbeats")
    assert heartbeats["verified"] and heartbeats["checksum_ok"] and heartbeats["read"] == heartbeats["source_rows"]
    parts = _parts(query, "agent_heartbeats")
    assert len(parts) >= 2 and parts[0][:2] == (0, FIRST_ROWID) and parts[1][1] > 0 and all(done for *_, done in parts)
    assert len(_parts(query, "llm_conversations")) == 1   # a unique run_id check: never split
    _same_as_one_worker(query, reference)


@pytest.mark.parametrize("mode", ["--side-by-side", "--one-process"])
def test_killed_split_run_resumes_the_same_ranges(mode, tmp_path, db_url, query, reference, monkeypatch):  # noqa: F811
    """The split is fixed by the run that made it: a re-run without the setting, even in one
    process (which never splits), loads the same ranges from their own resume points."""
    path = _bigger_file(tmp_path / "background_agents.db")
    monkeypatch.setenv(PART_ROWS_ENV, "20")
    killed = _run_cli(path, db_url, "before_commit:agent_heartbeats:3", "--side-by-side")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = _parts(query, "agent_heartbeats")
    assert len(before) >= 2 and not all(done for *_, done in before)
    monkeypatch.delenv(PART_ROWS_ENV)
    resumed = _run_cli(path, db_url, None, mode)
    assert resumed.returncode == 0, resumed.stderr + resumed.stdout
    assert [p[:2] for p in _parts(query, "agent_heartbeats")] == [p[:2] for p in before]
    _same_as_one_worker(query, reference)


def test_a_bad_part_size_is_named(tmp_path, db_url, monkeypatch):
    monkeypatch.setenv(PART_ROWS_ENV, "many")
    run = _run_cli(_bigger_file(tmp_path / "background_agents.db"), db_url, None, "--side-by-side")
    assert run.returncode != 0 and PART_ROWS_ENV in run.stderr and "'many'" in run.stderr


@pytest.mark.parametrize("mode, part_rows", [("--one-process", ""), ("--side-by-side", ""), ("--side-by-side", "20")])
def test_rows_at_or_below_rowid_zero_are_loaded(mode, part_rows, tmp_path, db_url, query, monkeypatch):
    """A legacy file may hold rowids <= 0 (inserted with an explicit rowid): the first resume
    point is before SQLite's smallest rowid, and a split's first range has no lower bound."""
    monkeypatch.setenv(PART_ROWS_ENV, part_rows)
    path = _bigger_file(tmp_path / "background_agents.db")
    conn = sqlite3.connect(path)
    low = [0, -3, -100, -(2**62)]
    conn.executemany("INSERT INTO agent_heartbeats (rowid, agent_id, timestamp, status, metadata) "
                     "VALUES (?, 'alpha', '2025-01-02T03:04:05', 'healthy', NULL)", [(r,) for r in low])
    conn.commit()
    in_file = conn.execute("SELECT count(*) FROM agent_heartbeats").fetchone()[0]
    conn.close()
    run = _run_cli(path, db_url, None, mode)
    assert run.returncode == 0, run.stderr + run.stdout
    heartbeats = next(t for t in json.loads(run.stdout)["tables"] if t["table"] == "agent_heartbeats")
    assert heartbeats["verified"] and heartbeats["source_rows"] == heartbeats["read"] == in_file
    loaded = {r[0] for r in query("SELECT legacy_id FROM fleet.heartbeats")}
    rejected = {r[0] for r in query("SELECT legacy_id FROM fleet.legacy_rejects WHERE table_name = 'agent_heartbeats'")}
    assert set(low) <= loaded and len(loaded) + len(rejected) == in_file
