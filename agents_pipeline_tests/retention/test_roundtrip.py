"""Archive a day and restore it: every value equal, files and manifest as promised."""

from __future__ import annotations

import json

from agents_pipeline.defs.retention import store
from agents_pipeline.defs.retention.archiver import archive_day
from agents_pipeline.defs.retention.restore import restore_day
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, rows_of, seed_heartbeats

HB = "SELECT agent_id, received_at, sent_at, kind, message, payload::text FROM fleet.heartbeats WHERE received_at >= %s AND received_at < %s::date + 1"


def test_heartbeat_day_archives_and_restores_with_every_value_equal(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 3000)
    before = rows_of(db_url, HB, (OLD_DAY, OLD_DAY))
    assert len(before) == 3000

    result = archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert result.outcome == "archived" and result.rows == 3000
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == []
    assert execute(db_url, "SELECT to_regclass(%s)", (f"fleet.heartbeats_p{OLD_DAY:%Y%m%d}",)) == [(None,)]
    manifest = json.loads(store.manifest_path(archive_dir, "heartbeats", OLD_DAY).read_text())
    assert manifest["files"][0]["rows"] == 3000 and len(manifest["files"][0]["sha256"]) == 64
    assert execute(db_url, "SELECT status, row_count FROM fleet.archive_ledger") == [("archived", 3000)]

    restored = restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    assert restored.rows_inserted == 3000 and restored.exact
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == before
    # Held: the next archival run leaves it in place.
    again = archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert again.outcome == "held"
    assert len(rows_of(db_url, HB, (OLD_DAY, OLD_DAY))) == 3000


def test_history_tables_archive_and_restore_with_every_value_equal(db_url, archive_dir):
    """Identity keys, uuid, numeric, text[], NaN, NULL keys; alerts take their notifications along
    and an open alert stays whatever its age."""
    from agents_pipeline_tests.retention.conftest import HISTORY_QUERIES, seed_history

    day = OLD_DAY.replace(year=OLD_DAY.year - 2)
    seed_history(db_url, day)
    before = {t: rows_of(db_url, q) for t, q in HISTORY_QUERIES.items()}
    for table in ("status_changes", "perf_rollups", "llm_runs", "alerts"):
        result = archive_day(db_url, archive_dir, table, day, 400)
        assert result.outcome == "archived", table
    assert rows_of(db_url, HISTORY_QUERIES["status_changes"]) == []
    assert rows_of(db_url, HISTORY_QUERIES["llm_runs"]) == []
    assert [r[2] for r in rows_of(db_url, HISTORY_QUERIES["alerts"])] == ["still open"]
    assert {r[3] for r in rows_of(db_url, HISTORY_QUERIES["notifications"])} == {"agent_down:2:opened", "agent_down:2:resolved"}
    assert (store.unit_dir(archive_dir, "alerts", day) / store.data_file_name("alerts", day, "notifications")).is_file()

    for table in ("status_changes", "perf_rollups", "llm_runs", "alerts"):
        restored = restore_day(db_url, archive_dir, table, day)
        assert restored.exact, table
    after = {t: rows_of(db_url, q) for t, q in HISTORY_QUERIES.items()}
    assert after == before
    # A second restore inserts nothing: no duplicates.
    assert restore_day(db_url, archive_dir, "llm_runs", day).rows_inserted == 0
    assert len(rows_of(db_url, HISTORY_QUERIES["llm_runs"])) == 40


def test_a_restored_day_archived_again_keeps_every_earlier_row(db_url, archive_dir):
    """Regression: re-archiving a restored day from which rows were since deleted must not
    overwrite the archive with fewer rows; the new generation replaces the old files only once
    its manifest is written."""
    seed_heartbeats(db_url, OLD_DAY, 600)
    before = rows_of(db_url, HB, (OLD_DAY, OLD_DAY))
    archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    execute(db_url, "UPDATE fleet.retention_holds SET held_until = now() - interval '1 second'")
    execute(db_url, "DELETE FROM fleet.heartbeats WHERE agent_id < 9")
    again = archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert again.outcome == "archived" and again.rows == 600
    manifest = store.read_manifest(archive_dir, "heartbeats", OLD_DAY)
    assert manifest.generation == 2
    files = sorted(p.name for p in store.unit_dir(archive_dir, "heartbeats", OLD_DAY).glob("*.parquet"))
    assert files == [f"heartbeats_{OLD_DAY:%Y%m%d}.g2.parquet"]
    assert restore_day(db_url, archive_dir, "heartbeats", OLD_DAY).exact
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == before


TASKS = ("SELECT task_id, kind, capability, payload::text, priority, run_after, state, attempts, max_attempts, dedupe_key, "
         "submitted_by, claimed_by, attempt_id, claimed_at, lease, lease_until, renew_at, result::text, last_error, "
         "failed_at, created_at, finished_at FROM fleet.tasks ORDER BY task_id")


def test_finished_tasks_archive_and_restore_and_dead_letters_and_live_tasks_stay(db_url, archive_dir):
    """Retention of the task queue: done and failed tasks of a day past retention go (every column
    back equal on restore: uuid attempt ids, intervals, jsonb); dead letters wait for an operator
    and ready or claimed tasks are live, whatever their age."""
    ts = f"{OLD_DAY} 08:00:00+00"
    execute(db_url, """
        INSERT INTO fleet.tasks (kind, capability, payload, state, attempts, dedupe_key, submitted_by, claimed_by,
                                 attempt_id, claimed_at, lease, lease_until, result, last_error, failed_at,
                                 created_at, finished_at, run_after)
        SELECT 'crawl', CASE WHEN g %% 3 = 0 THEN NULL ELSE 'crawl' END, jsonb_build_object('n', g),
               (ARRAY['done', 'failed', 'dead', 'ready', 'claimed'])[g %% 5 + 1], 1 + g %% 3,
               CASE WHEN g %% 2 = 0 THEN 'key-' || g END, 1, 2, gen_random_uuid(), %s::timestamptz,
               interval '90 seconds', %s::timestamptz + interval '90 seconds',
               CASE WHEN g %% 5 = 0 THEN jsonb_build_object('ok', g) END, CASE WHEN g %% 5 = 1 THEN E'bad\\tinput' END,
               CASE WHEN g %% 5 = 1 THEN %s::timestamptz END, %s::timestamptz - interval '1 hour',
               CASE WHEN g %% 5 < 3 THEN %s::timestamptz + make_interval(secs => g) END, %s::timestamptz
        FROM generate_series(1, 100) g""", (ts, ts, ts, ts, ts, ts))
    before = rows_of(db_url, TASKS)
    result = archive_day(db_url, archive_dir, "tasks", OLD_DAY, 30)
    assert result.outcome == "archived" and result.rows == 40
    assert sorted({r[6] for r in rows_of(db_url, TASKS)}) == ["claimed", "dead", "ready"]
    assert len(rows_of(db_url, TASKS)) == 60
    restored = restore_day(db_url, archive_dir, "tasks", OLD_DAY)
    assert restored.exact and restored.rows_inserted == 40
    assert rows_of(db_url, TASKS) == before
