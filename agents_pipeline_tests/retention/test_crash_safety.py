"""SIGKILL the archiver at each step, then run it again: no row lost, none duplicated."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agents_pipeline.defs.retention import policy
from agents_pipeline.defs.retention.archiver import archive_day
from agents_pipeline.defs.retention.restore import restore_day
from agents_pipeline_tests.retention.conftest import (
    HISTORY_QUERIES,
    OLD_DAY,
    execute,
    rows_of,
    seed_heartbeats,
    seed_history,
)

HB = "SELECT agent_id, received_at, sent_at, kind, message, payload::text FROM fleet.heartbeats WHERE received_at >= %s AND received_at < %s::date + 1"
REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from datetime import date
    from pathlib import Path
    from agents_pipeline.defs.retention import archiver

    url, root, table, day, days, step, batch = sys.argv[1:8]
    archiver.DELETE_BATCH = int(batch)

    def hook(name):
        if name == step:
            os.kill(os.getpid(), signal.SIGKILL)

    archiver.checkpoint = hook
    archiver.archive_day(url, Path(root), table, date.fromisoformat(day), int(days))
""")


def spawn(url: str, root: Path, table: str, day, days: int, step: str, batch: int = 5000) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, url, str(root), table, day.isoformat(), str(days), step,
                             str(batch)], env=env, cwd=REPO)


@pytest.mark.parametrize("step", ["after_write", "after_verify", "after_detach"])
def test_partition_archival_killed_at_each_step_loses_and_duplicates_nothing(db_url, archive_dir, step):
    seed_heartbeats(db_url, OLD_DAY, 1500)
    before = rows_of(db_url, HB, (OLD_DAY, OLD_DAY))
    proc = spawn(db_url, archive_dir, "heartbeats", OLD_DAY, 30, step)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    # Killed: every row is still in PostgreSQL (attached or detached) or the day is whole on disk.
    result = archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert result.outcome == "archived" and result.rows == 1500
    assert execute(db_url, "SELECT count(*) FROM pg_class WHERE relname = %s", (f"heartbeats_p{OLD_DAY:%Y%m%d}",)) == [(0,)]
    assert list(archive_dir.rglob("*.tmp-*")) == []
    assert restore_day(db_url, archive_dir, "heartbeats", OLD_DAY).exact
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == before


def test_unpartitioned_delete_killed_between_batches_keeps_the_whole_day_in_the_archive(db_url, archive_dir):
    """Regression: a re-run after a half-done delete must not overwrite the file with only the
    rows left in PostgreSQL (the deleted ones would exist nowhere)."""
    day = OLD_DAY.replace(year=OLD_DAY.year - 2)
    seed_history(db_url, day)
    before = rows_of(db_url, HISTORY_QUERIES["status_changes"])
    proc = spawn(db_url, archive_dir, "status_changes", day, 400, "during_delete", batch=7)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    left = rows_of(db_url, HISTORY_QUERIES["status_changes"])
    assert 0 < len(left) < len(before)
    result = archive_day(db_url, archive_dir, "status_changes", day, 400)
    assert result.outcome == "archived" and result.rows == len(before)
    assert rows_of(db_url, HISTORY_QUERIES["status_changes"]) == []
    assert restore_day(db_url, archive_dir, "status_changes", day).exact
    assert rows_of(db_url, HISTORY_QUERIES["status_changes"]) == before


def test_detach_interrupted_midway_is_finalized_by_the_next_run(db_url, archive_dir):
    """DETACH ... CONCURRENTLY killed while it waits leaves the partition 'detach pending';
    the next run must FINALIZE it rather than fail or lose the day."""
    import psycopg2

    from agents_pipeline.core.dsn import connect_kwargs

    seed_heartbeats(db_url, OLD_DAY, 500)
    before = rows_of(db_url, HB, (OLD_DAY, OLD_DAY))
    execute(db_url, "SELECT fleet.ensure_partitions('heartbeats', %s, %s)", (OLD_DAY - timedelta(days=1),) * 2)
    blocker = psycopg2.connect(**connect_kwargs(db_url))
    with blocker.cursor() as cur:   # an open reader of the parent (pruned to today: the old day is not locked)
        cur.execute("SELECT count(*) FROM fleet.heartbeats WHERE received_at >= %s::timestamptz",
                    (f"{policy.utc_today()} 00:00:00+00",))
    proc = spawn(db_url, archive_dir, "heartbeats", OLD_DAY, 30, "never")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pending = execute(db_url, "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = to_regclass(%s)",
                          (f"fleet.heartbeats_p{OLD_DAY:%Y%m%d}",))
        if pending == [(True,)]:
            break
        time.sleep(0.1)
    assert pending == [(True,)]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    execute(db_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE application_name = 'agents_pipeline:retention' AND datname = current_database()")
    blocker.rollback()
    blocker.close()
    # Another day first: PostgreSQL allows one pending detach per parent, so it must finish ours.
    other = OLD_DAY - timedelta(days=1)
    seed_heartbeats(db_url, other, 20)
    assert archive_day(db_url, archive_dir, "heartbeats", other, 30).rows == 20
    result = archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    assert result.outcome == "archived" and result.rows == 500
    assert restore_day(db_url, archive_dir, "heartbeats", OLD_DAY).exact
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == before


def test_late_insert_into_a_day_being_archived_is_refused_not_lost(db_url, archive_dir):
    """Regression: a row inserted into an old day between the export and the detach would have
    been dropped with the partition without being in the file. The partition is frozen first."""
    import psycopg2

    seed_heartbeats(db_url, OLD_DAY, 100)
    proc = spawn(db_url, archive_dir, "heartbeats", OLD_DAY, 30, "after_verify")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    with pytest.raises(psycopg2.errors.CheckViolation, match="_archiving"):
        execute(db_url, "INSERT INTO fleet.heartbeats (agent_id, received_at) VALUES (1, %s)",
                (f"{OLD_DAY} 12:00:00+00",))
    assert archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30).rows == 100
    assert restore_day(db_url, archive_dir, "heartbeats", OLD_DAY).exact
    execute(db_url, "INSERT INTO fleet.heartbeats (agent_id, received_at) VALUES (1, %s)", (f"{OLD_DAY} 12:00:00+00",))
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(101,)]


def test_rearchival_killed_after_writing_leaves_the_earlier_archive_whole(db_url, archive_dir):
    """Regression: writing a new generation over the old file name, then dying before the
    manifest, left a manifest whose checksum no file matched."""
    seed_heartbeats(db_url, OLD_DAY, 300)
    before = rows_of(db_url, HB, (OLD_DAY, OLD_DAY))
    archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    execute(db_url, "UPDATE fleet.retention_holds SET held_until = now() - interval '1 second'")
    proc = spawn(db_url, archive_dir, "heartbeats", OLD_DAY, 30, "after_write")
    assert proc.wait(timeout=60) == -signal.SIGKILL
    assert archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30).rows == 300
    assert restore_day(db_url, archive_dir, "heartbeats", OLD_DAY).exact
    assert rows_of(db_url, HB, (OLD_DAY, OLD_DAY)) == before
