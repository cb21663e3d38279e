"""A dirty legacy file end to end: every dirt kind converted or rejected, none lost, re-runs
duplicate nothing, history triggers nothing, and the report's counts add up."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from agents_pipeline.defs.migration.runner import migrate_sqlite
from agents_pipeline_tests.migration import legacy_files as L
from agents_pipeline_tests.migration.conftest import snapshot

TABLE_SIZES = {"agents": len(L.AGENTS), "agent_heartbeats": len(L.HEARTBEATS), "performance_metrics": len(L.METRICS),
               "system_alerts": len(L.ALERTS), "llm_conversations": len(L.CONVERSATIONS), "help_requests": len(L.HELP),
               "shared_state": len(L.STATE), "agent_messages": len(L.MESSAGES), "system_config": len(L.CONFIG),
               L.HOSTILE: len(L.USER_ROWS)}


def test_every_row_is_converted_or_rejected_and_counts_add_up(legacy_file, db_url, query):
    report = migrate_sqlite(legacy_file, db_url, batch_size=4)
    assert report.ok, report.to_markdown()
    rows = {t.table: t for t in report.tables}
    assert set(rows) == set(TABLE_SIZES)
    for table, size in TABLE_SIZES.items():
        row = rows[table]
        assert (row.source_rows, row.read) == (size, size), table
        assert row.written + row.rejected == size and row.verified and row.checksum_ok, table
    rejects = dict(((t, i), r) for t, i, r in query(
        "SELECT table_name, legacy_id, reason FROM fleet.legacy_rejects"))
    assert sum(1 for t, _ in rejects if t == "agent_heartbeats") == rows["agent_heartbeats"].rejected
    # Heartbeats: each converted row at its UTC time, each rejected row with its reason.
    stored = {i: (t, k) for i, t, k in query("SELECT legacy_id, received_at, kind FROM fleet.heartbeats")}
    for rowid, (_, _, _, _, (fate, expected)) in enumerate(L.HEARTBEATS, start=1):
        if fate == "ok":
            assert stored[rowid][0] == datetime.fromisoformat(expected), rowid
            assert ("agent_heartbeats", rowid) not in rejects
        else:
            assert rowid not in stored and expected in rejects[("agent_heartbeats", rowid)], rowid
    assert stored[5][1] == "fail" and stored[4][1] == "start"
    values = {i: (v, u) for i, v, u in query("SELECT legacy_id, value, unit FROM fleet.perf_samples")}
    for rowid, metric in enumerate(L.METRICS, start=1):
        fate, expected = metric[6]
        if fate == "ok":
            assert values[rowid][0] == expected, rowid
        else:
            assert expected in rejects[("performance_metrics", rowid)]
    assert values[4] == (12.5, "%")


def test_originals_of_rejected_rows_are_kept_as_escaped_text(legacy_file, db_url, query):
    migrate_sqlite(legacy_file, db_url)
    bad_utf8 = next(i for i, h in enumerate(L.HEARTBEATS, start=1) if isinstance(h[2], bytes))
    original, types = query("SELECT original, types FROM fleet.legacy_rejects "
                            "WHERE table_name = 'agent_heartbeats' AND legacy_id = %s", (bad_utf8,))[0]
    assert original["status"] == "\\xff\\xfebad" and types["status"] == "text"
    nul = next(i for i, h in enumerate(L.HEARTBEATS, start=1) if h[2] == "heal\x00thy")
    original = query("SELECT original FROM fleet.legacy_rejects WHERE table_name = 'agent_heartbeats' "
                     "AND legacy_id = %s", (nul,))[0][0]
    assert original == {"agent_id": "alpha", "timestamp": "2025-01-20T10:00:08", "status": "heal\\x00thy",
                        "metadata": None}


def test_history_triggers_nothing(legacy_file, db_url, query):
    """Imported agents are paused, placeholders exist for missing references, alerts queue no
    notifications, help requests are never pending, traced conversations count as sent."""
    migrate_sqlite(legacy_file, db_url)
    agents = {n: (s, p, ph) for n, s, p, ph in query("SELECT name, status, paused, placeholder FROM fleet.agents")}
    assert agents["alpha"] == ("paused", True, False) and agents["beta"] == ("paused", True, False)
    for name in ("ghost", "ghost2", "gamma"):  # gamma's own row was rejected (bad config JSON)
        assert agents[name] == ("paused", True, True)
    assert "bad\x01name" not in agents
    config = query("SELECT config FROM fleet.agents WHERE name = 'beta'")[0][0]
    assert config["mode"] == "fast" and config["legacy_import"]["enabled"] is False
    assert query("SELECT count(*) FROM fleet.notifications") == [(0,)]
    alerts = query("SELECT imported, resolved_at IS NULL, severity, details FROM fleet.alerts ORDER BY legacy_id")
    assert all(a[0] for a in alerts) and [a[1] for a in alerts] == [False, True, True, False]
    assert alerts[3][2] == "critical" and alerts[3][3]["legacy_severity"] == "ERROR"
    assert query("SELECT status FROM fleet.help_requests ORDER BY legacy_id") == [("answered",), ("imported",)]
    convs = {c: (r, s) for c, r, s in query("SELECT conversation_id, run_id, langsmith_sent_at FROM fleet.llm_conversations")}
    assert convs["c1"][0] == L.RUN_UUID and convs["c1"][1] is not None
    assert convs["c2"][1] is None and uuid.UUID(convs["c2"][0]).version == 5
    assert query("SELECT metadata->>'legacy_run_id' FROM fleet.llm_conversations WHERE conversation_id = 'c3'") == \
        [("not-a-uuid",)]
    assert query("SELECT count(*) FROM fleet.agent_messages WHERE acked_at IS NULL") == [(0,)]
    assert query("SELECT key, value, version FROM fleet.kv_store ORDER BY key") == [
        ("config/threshold", {"cpu": 90}, 3), ("greeting", "hello world", 1)]
    assert query("SELECT key, value FROM fleet.system_config WHERE legacy_id IS NOT NULL ORDER BY key") == [
        ("limits", {"max": 5}), ("mode", "production"), ("retention_days", 30)]


def test_rerun_duplicates_nothing_and_reports_nothing_new(legacy_file, db_url, query):
    first = migrate_sqlite(legacy_file, db_url, batch_size=3)
    before = snapshot(query)
    second = migrate_sqlite(legacy_file, db_url, batch_size=3)
    assert first.ok and second.ok
    assert snapshot(query) == before
    assert second.totals["new_this_run"] == len(L.USER_ROWS)  # the user table is re-copied whole
    assert second.totals["read"] == first.totals["read"]
    assert query("SELECT count(*), count(*) FILTER (WHERE ok) FROM fleet.legacy_runs") == [(2, 2)]


def test_rows_appended_to_the_legacy_file_are_picked_up_by_a_rerun(legacy_file, db_url, query):
    import sqlite3

    migrate_sqlite(legacy_file, db_url)
    conn = sqlite3.connect(legacy_file)
    conn.execute("INSERT INTO agent_heartbeats (agent_id, timestamp, status) VALUES ('alpha', '2025-02-01', 'ok')")
    conn.commit()
    conn.close()
    report = migrate_sqlite(legacy_file, db_url)
    hb = next(t for t in report.tables if t.table == "agent_heartbeats")
    assert report.ok and hb.new_this_run == 1 and hb.read == len(L.HEARTBEATS) + 1
    assert query("SELECT count(*) FROM fleet.heartbeats WHERE received_at = '2025-02-01'") == [(1,)]


def test_a_row_lost_after_the_copy_fails_verification(legacy_file, db_url, query):
    """Regression: verification must recount PostgreSQL, not trust the loader's counters."""
    migrate_sqlite(legacy_file, db_url)
    query("DELETE FROM fleet.perf_samples WHERE legacy_id = 1")
    report = migrate_sqlite(legacy_file, db_url)
    metrics = next(t for t in report.tables if t.table == "performance_metrics")
    assert not report.ok and metrics.verified is False
    assert any("written" in n for n in metrics.notes)


def test_a_changed_value_fails_the_checksum(legacy_file, db_url, query):
    migrate_sqlite(legacy_file, db_url)
    query("UPDATE fleet.heartbeats SET message = 'tampered' WHERE legacy_id = 1")
    report = migrate_sqlite(legacy_file, db_url)
    hb = next(t for t in report.tables if t.table == "agent_heartbeats")
    assert hb.checksum_ok is False and not report.ok


def test_dry_run_writes_nothing(legacy_file, db_url, query):
    report = migrate_sqlite(legacy_file, None, dry_run=True)
    assert report.ok and report.totals["read"] == sum(TABLE_SIZES.values())
    assert query("SELECT count(*) FROM fleet.legacy_sources") == [(0,)]


def test_older_file_without_tables_and_columns(tmp_path, db_url, query):
    path = L.make_legacy_file(tmp_path / "old.db", older=True)
    report = migrate_sqlite(path, db_url)
    assert report.ok, report.to_markdown()
    rows = {t.table: t for t in report.tables}
    assert rows["agent_messages"].status == "absent"
    assert any("version" in n for n in rows["shared_state"].notes)
    # no version column: every key arrives at version 1 (and 'zero'/'broken' are no longer rejected)
    assert query("SELECT key, version FROM fleet.kv_store ORDER BY key") == [
        ("broken", 1), ("config/threshold", 1), ("greeting", 1), ("zero", 1)]


def test_hostile_user_table_name_is_only_ever_an_identifier(legacy_file, db_url, query):
    report = migrate_sqlite(legacy_file, db_url)
    assert report.ok
    assert query("SELECT count(*) FROM fleet.agents")[0][0] > 0  # the name did not execute
    user = query('SELECT id, label, amount, data FROM legacy."x""; DROP TABLE fleet.agents; --" ORDER BY id')
    assert [(i, lbl, amt, bytes(d) if d is not None else None) for i, lbl, amt, d in user] == [
        (1, "plain", 1.5, b"\x00\x01\xff"), (2, "caf\u00e9 \U0001F600", 2.0, None), (3, None, None, b"")]
    assert query("SELECT data_type FROM information_schema.columns WHERE table_schema = 'legacy' "
                 "ORDER BY ordinal_position") == [("bigint",), ("text",), ("double precision",), ("bytea",)]


def test_cli_json_report_and_exit_codes(legacy_file, db_env, capsys, tmp_path):
    from agents_pipeline.cli.main import main

    assert main(["migrate-sqlite", str(legacy_file), "--json", "--accept-rejects"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["totals"]["read"] == out["totals"]["written"] + out["totals"]["rejected"]
    junk = tmp_path / "notes.txt"
    junk.write_text("not a database at all\n" * 10)
    assert main(["migrate-sqlite", str(junk)]) == 2      # could not run
    assert "not a SQLite database" in capsys.readouterr().err
    assert main(["migrate-sqlite", str(tmp_path / "missing.db")]) == 2
    assert "no such file" in capsys.readouterr().err


@pytest.mark.parametrize("cut", [100, 5000, 0.6])
def test_truncated_and_corrupt_files_get_a_clear_message(legacy_file, tmp_path, cut):
    from agents_pipeline.defs.migration.source import LegacyFileError

    data = legacy_file.read_bytes()
    size = cut if isinstance(cut, int) else int(len(data) * cut)
    broken = tmp_path / "broken.db"
    broken.write_bytes(data[:size])
    with pytest.raises(LegacyFileError, match="truncated|corrupt"):
        migrate_sqlite(broken, None, dry_run=True)


def test_corrupt_page_inside_a_table_is_reported_not_crashed(legacy_file, tmp_path):
    from agents_pipeline.defs.migration.source import LegacyFileError

    data = bytearray(legacy_file.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for offset in range(page * 2, len(data), page):  # scribble over every page header after the schema
        data[offset:offset + 8] = b"\xde\xad\xbe\xef" * 2
    broken = tmp_path / "scribbled.db"
    broken.write_bytes(bytes(data))
    with pytest.raises(LegacyFileError, match="corrupt|not a usable"):
        migrate_sqlite(broken, None, dry_run=True)


def test_now_is_not_used_for_history_times(legacy_file, db_url, query):
    migrate_sqlite(legacy_file, db_url)
    newest = query("SELECT max(received_at) FROM fleet.heartbeats")[0][0]
    assert newest < datetime(2025, 2, 1, tzinfo=UTC)


def test_side_by_side_workers_give_the_same_result(legacy_file, tmp_path, db_url, query):
    """The three big tables loaded by worker processes end exactly as in one process."""
    report = migrate_sqlite(legacy_file, db_url, batch_size=4, parallel=True)
    assert report.ok, report.to_markdown()
    parallel = snapshot(query)
    for table in ("heartbeats", "perf_samples", "conversations", "rejects"):
        assert parallel[table], table
    query("TRUNCATE fleet.heartbeats, fleet.perf_samples, fleet.llm_conversations, fleet.legacy_rejects, "
          "fleet.legacy_progress, fleet.legacy_runs, fleet.alerts, fleet.help_requests, fleet.agent_messages, "
          "fleet.kv_store, fleet.system_config, fleet.agents, fleet.legacy_user_tables, fleet.legacy_sources "
          "RESTART IDENTITY CASCADE")
    assert migrate_sqlite(legacy_file, db_url, batch_size=4, parallel=False).ok
    assert snapshot(query) == parallel


def test_the_report_says_when_imported_history_starts_before_the_partitions(legacy_file, db_url, monkeypatch):
    """Issue #21: the partitioned assets begin at AGENTS_PIPELINE_HISTORY_START (read when the
    definitions load); history older than that cannot be rolled up, and the report says so."""
    monkeypatch.delenv("AGENTS_PIPELINE_HISTORY_START", raising=False)
    report = migrate_sqlite(legacy_file, db_url)
    assert not [n for n in report.notes if "partitions' first day" in n]       # 2025-01-20 onwards: covered
    monkeypatch.setenv("AGENTS_PIPELINE_HISTORY_START", "2025-02-01")
    again = migrate_sqlite(legacy_file, db_url)
    (note,) = [n for n in again.notes if "partitions' first day" in n]
    assert note.startswith("imported data starts on 2025-01-") and "2025-02-01" in note
    assert "AGENTS_PIPELINE_HISTORY_START=2025-01-" in note
