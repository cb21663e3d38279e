"""What the archive trusts: manifests name only their own day's files, archives are private to
their owner, and a day locked by another session is waited for, then named."""

from __future__ import annotations

import json
import os
import shutil
import stat
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg2
import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import ConflictError
from agents_pipeline.defs.retention import store
from agents_pipeline.defs.retention.archiver import archive_day
from agents_pipeline.defs.retention.parquet_io import ArchiveFileError
from agents_pipeline.defs.retention.restore import restore_day
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, seed_heartbeats

OTHER_DAY = OLD_DAY - timedelta(days=1)


def _archived(db_url: str, root: Path) -> tuple[Path, Path]:
    """Archives 100 heartbeats of OLD_DAY; returns (manifest path, data file)."""
    seed_heartbeats(db_url, OLD_DAY, 100)
    assert archive_day(db_url, root, "heartbeats", OLD_DAY, 30).outcome == "archived"
    folder = store.unit_dir(root, "heartbeats", OLD_DAY)
    return store.manifest_path(root, "heartbeats", OLD_DAY), folder / store.data_file_name("heartbeats", OLD_DAY, "heartbeats")


def _nothing_restored(db_url: str) -> None:
    assert execute(db_url, "SELECT to_regclass(%s)", (f"fleet.heartbeats_p{OLD_DAY:%Y%m%d}",)) == [(None,)]
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(0,)]
    assert execute(db_url, "SELECT count(*) FROM fleet.retention_holds") == [(0,)]


@pytest.mark.parametrize("where, problem", [
    ("climbing", "climbs out of the day's folder"),
    ("absolute", "is an absolute path"),
    ("subfolder", "is a path, not a bare file name"),
    ("nul", "contains a NUL character"),
    ("other_day", "is not this day's file of heartbeats"),
])
def test_manifest_naming_a_file_outside_its_day_is_refused(db_url, archive_dir, tmp_path, where, problem):
    """Regression: restore joined the manifest's file names to the day's folder as given, so a
    manifest edited to name '../../../x.parquet', an absolute path or another day's file loaded
    rows from anywhere into the table. Each is refused, naming the problem, with nothing restored
    (the files named are real copies with the right sha256, so only the name check stops them)."""
    manifest_path, data = _archived(db_url, archive_dir)
    elsewhere = tmp_path / "elsewhere.parquet"
    shutil.copy(data, elsewhere)
    shutil.copy(data, archive_dir / "elsewhere.parquet")
    (data.parent / "sub").mkdir()
    shutil.copy(data, data.parent / "sub" / "x.parquet")
    other_day = store.data_file_name("heartbeats", OTHER_DAY, "heartbeats")
    shutil.copy(data, data.parent / other_day)
    name = {"climbing": "../../../elsewhere.parquet", "absolute": str(elsewhere), "subfolder": "sub/x.parquet",
            "nul": data.name + "\x00", "other_day": other_day}[where]
    doc = json.loads(manifest_path.read_text())
    doc["files"][0]["file"] = name
    manifest_path.write_text(json.dumps(doc))
    with pytest.raises(ArchiveFileError, match=f"is refused: .*{problem}.*nothing was read or restored"):
        restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    _nothing_restored(db_url)


def test_manifest_of_another_day_is_refused(db_url, archive_dir):
    """Regression: a manifest copied to another day's place was read as that day's (its own
    table and day fields were never compared), restoring one day's rows as another's."""
    manifest_path, _ = _archived(db_url, archive_dir)
    moved = store.manifest_path(archive_dir, "heartbeats", OTHER_DAY)
    store.make_unit_dir(archive_dir, "heartbeats", OTHER_DAY)
    shutil.copy(manifest_path, moved)
    with pytest.raises(ArchiveFileError, match=f"manifest of heartbeats {OLD_DAY}, not of heartbeats {OTHER_DAY}"):
        restore_day(db_url, archive_dir, "heartbeats", OTHER_DAY)
    doc = json.loads(manifest_path.read_text())
    doc["files"][0]["table"] = "agents"
    manifest_path.write_text(json.dumps(doc))
    with pytest.raises(ArchiveFileError, match="'agents', which is not part of the archive of heartbeats"):
        restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    _nothing_restored(db_url)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_archive_files_are_0600_in_0700_folders(db_url, archive_dir):
    """Regression: Parquet files and manifests were written with the umask's mode (0644 under the
    usual 022) in 0755 folders, so every local user could read archived prompts and payloads.
    Checked under umask 000, with a table folder left 0755 by an earlier version, and after a
    second archival of the day (new files renamed into place keep their 0600)."""
    (archive_dir / "heartbeats").mkdir(parents=True)
    os.chmod(archive_dir, 0o755)
    os.chmod(archive_dir / "heartbeats", 0o755)
    old_umask = os.umask(0o000)
    try:
        manifest_path, data = _archived(db_url, archive_dir)
        restore_day(db_url, archive_dir, "heartbeats", OLD_DAY, hold_days=0.00001)   # held 0.9 s
        time.sleep(1.0)
        again = archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    finally:
        os.umask(old_umask)
    assert again.outcome == "archived"
    month = manifest_path.parent
    assert _mode(archive_dir) == 0o755      # the operator's folder: left as it was
    for folder in (archive_dir / "heartbeats", month.parent, month):
        assert _mode(folder) == 0o700, folder
    files = sorted(month.iterdir())
    assert [f.name for f in files] == [store.data_file_name("heartbeats", OLD_DAY, "heartbeats", 2), manifest_path.name]
    for path in files:
        assert _mode(path) == 0o600, path
    assert not data.exists()        # the first generation was removed


def test_archive_root_made_by_the_archiver_is_0700(db_url, archive_dir):
    """Regression: the archive folder the archiver creates was 0755 (mkdir with the umask)."""
    old_umask = os.umask(0o000)
    try:
        _archived(db_url, archive_dir)
    finally:
        os.umask(old_umask)
    assert _mode(archive_dir) == 0o700


def _hold_lock(db_url: str, table: str, day) -> tuple[psycopg2.extensions.connection, int]:
    conn = psycopg2.connect(**connect_kwargs(db_url), application_name="test:lock-holder")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(hashtext('fleet.archive'), hashtext(%s)), pg_backend_pid()",
                    (f"{table}:{day.isoformat()}",))
        return conn, cur.fetchone()[1]


def test_a_locked_day_is_waited_for_then_the_holders_pid_is_named(db_env, archive_dir, capsys):
    db_url = db_env
    """Regression: archiving a day another session was archiving or restoring failed at once with
    no hint of who held it. Now it waits (bounded, ``lock_wait_s``) and then names the pid of the
    session holding the lock, read from pg_locks; nothing is removed meanwhile."""
    seed_heartbeats(db_url, OLD_DAY, 50)
    holder, pid = _hold_lock(db_url, "heartbeats", OLD_DAY)
    try:
        started = time.monotonic()
        with pytest.raises(ConflictError, match=f"held by PostgreSQL backend pid {pid} .*test:lock-holder"):
            archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30, lock_wait_s=1.0)
        assert 1.0 <= time.monotonic() - started < 5.0
        assert main(["archive", "run", "heartbeats", OLD_DAY.isoformat(), "--lock-wait", "0.3"]) == 2
        assert f"pid {pid}" in capsys.readouterr().err
        assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(50,)]
        # Released within the wait: the archival goes ahead.
        threading.Timer(0.5, holder.close).start()
        assert archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30, lock_wait_s=10.0).outcome == "archived"
    finally:
        holder.close()
    holder, pid = _hold_lock(db_url, "heartbeats", OLD_DAY)
    try:
        with pytest.raises(ConflictError, match=f"pid {pid}"):
            restore_day(db_url, archive_dir, "heartbeats", OLD_DAY, lock_wait_s=0.2)
    finally:
        holder.close()
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(0,)]
