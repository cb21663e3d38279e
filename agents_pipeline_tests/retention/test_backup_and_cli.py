"""Backup and recovery through pg_dump/pg_restore, and the operator's commands end to end."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.defs.retention import backup
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, rows_of, seed_heartbeats, seed_history

HB = "SELECT agent_id, received_at, sent_at, kind, message, payload::text FROM fleet.heartbeats"


def test_backup_restored_into_a_fresh_database_has_the_same_counts_and_checksums(db_env, empty_db_url, tmp_path,
                                                                                 capsys, monkeypatch):
    seed_heartbeats(db_env, OLD_DAY, 400)
    seed_history(db_env, OLD_DAY)
    assert main(["db", "backup", str(tmp_path / "b.dump")]) == 0
    assert "backup written to" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "b.dump.json").read_text())
    assert sidecar["tables"]["fleet.heartbeats"].startswith("400:")
    monkeypatch.setenv(backup.RESTORE_URL_ENV, empty_db_url)
    assert main(["db", "restore", str(tmp_path / "b.dump")]) == 0
    out = capsys.readouterr().out
    assert "row counts and checksums match" in out and empty_db_url.split("?")[0].rsplit("/", 1)[1] in out
    src = backup.table_fingerprints_for(db_env)
    dst = backup.table_fingerprints_for(empty_db_url)
    assert src == dst and src["fleet.status_changes"].startswith("100:")
    assert rows_of(empty_db_url, HB) == rows_of(db_env, HB)
    # The password never reaches argv: the tools get it through the environment only.
    env = backup.libpq_env("postgresql+psycopg2://u:s3cret@db.example:5433/prod")
    assert env["PGPASSWORD"] == "s3cret" and env["PGHOST"] == "db.example" and env["PGDATABASE"] == "prod"


def test_restore_target_on_the_command_line_is_refused(db_env, empty_db_url, tmp_path, capsys, monkeypatch):
    """Regression: `db restore --into URL` put the target's password in argv, where `ps` shows it
    to every user of the host; the URL now comes from AGENTS_PIPELINE_RESTORE_DATABASE_URL, and
    the old form is refused before anything is read, naming the variable, without echoing the URL."""
    path, _ = backup.backup(db_env, tmp_path)
    secret_url = empty_db_url.replace("postgres@", "postgres:s3cr3t-pw@")
    monkeypatch.setenv(backup.RESTORE_URL_ENV, empty_db_url)
    assert main(["db", "restore", str(path), "--into", secret_url]) == 2
    err = capsys.readouterr().err
    assert "--into URL is refused" in err and backup.RESTORE_URL_ENV in err and "nothing was restored" in err
    assert "s3cr3t-pw" not in err
    assert backup.table_fingerprints_for(empty_db_url) == {}     # nothing restored
    monkeypatch.delenv(backup.RESTORE_URL_ENV)
    assert main(["db", "restore", str(path), "--into", ""]) == 2   # any value, even empty, is the old form
    assert backup.RESTORE_URL_ENV in capsys.readouterr().err


def test_backup_and_its_sidecar_are_private(db_env, tmp_path, monkeypatch):
    """Regression: the dump and its .json were written with the umask's mode (0644 under the usual
    022) in a folder anyone could enter, so every local user could read the fleet's whole history.
    Now 0600 files in a 0700 folder, also under a permissive umask and over a stale 0644 file."""
    old_umask = os.umask(0o000)
    try:
        folder = tmp_path / "made" / "by" / "backup"
        dump, _ = backup.backup(db_env, folder / "fleet.dump")
        operators = tmp_path / "operators"          # a folder the operator made: left as it is
        operators.mkdir(mode=0o755)
        stale = operators / "stale.dump.partial"
        stale.write_bytes(b"left by a killed run")
        os.chmod(stale, 0o644)
        again, _ = backup.backup(db_env, operators / "stale.dump")
    finally:
        os.umask(old_umask)
    for path in (dump, dump.with_name("fleet.dump.json"), again, again.with_name("stale.dump.json")):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    for made in (folder, folder.parent, folder.parent.parent):
        assert stat.S_IMODE(os.stat(made).st_mode) == 0o700, made
    assert stat.S_IMODE(os.stat(operators).st_mode) == 0o755
    assert not list(folder.glob("*.partial")) and not list(operators.glob("*.partial"))
    default = tmp_path / "project" / "backups"
    default.mkdir(parents=True, mode=0o755)
    os.chmod(default, 0o755)             # the product's own folder, made by an earlier version
    monkeypatch.setattr(backup, "default_backup_path", lambda: default / "agents_pipeline-x.dump")
    path, _ = backup.backup(db_env)
    assert stat.S_IMODE(os.stat(default).st_mode) == 0o700 and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_restore_into_a_database_that_holds_the_schema_is_refused(db_env, tmp_path, capsys):
    path, _ = backup.backup(db_env, tmp_path)
    assert main(["db", "restore", str(path)]) == 2
    assert "already holds the product's schema" in capsys.readouterr().err
    bogus = tmp_path / "bogus.dump"
    bogus.write_bytes(b"not a dump")
    with pytest.raises(Exception, match="not a pg_dump custom-format file"):
        backup.restore(bogus, db_env)


def test_archive_commands_run_restore_and_list(db_env, archive_dir: Path, capsys):
    seed_heartbeats(db_env, OLD_DAY, 250)
    before = rows_of(db_env, HB)
    assert main(["archive", "pending", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["heartbeats"] == [OLD_DAY.isoformat()]
    assert main(["archive", "run", "heartbeats", OLD_DAY.isoformat()]) == 0
    assert "archived, 250 rows" in capsys.readouterr().out
    assert execute(db_env, "SELECT count(*) FROM fleet.heartbeats") == [(0,)]
    assert main(["archive", "restore", "heartbeats", OLD_DAY.isoformat(), "--hold-days", "2"]) == 0
    out = capsys.readouterr().out
    assert "250 rows restored" in out and "identical to the archive" in out
    assert rows_of(db_env, HB) == before
    assert main(["archive", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["status"] == "restored" and listed[0]["held_until"]
    assert main(["archive", "restore", "agents", OLD_DAY.isoformat()]) == 2
    assert "not subject to retention" in capsys.readouterr().err
    assert main(["archive", "run", "heartbeats", "yesterday"]) == 2
    assert "is not a date" in capsys.readouterr().err


def test_policy_and_maintain_commands(db_env, archive_dir: Path, capsys, monkeypatch):
    monkeypatch.setenv("AGENTS_PIPELINE_RETENTION", "heartbeats=45")
    assert main(["archive", "policy", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["archive_folder"] == str(archive_dir) and info["tables"]["heartbeats"]["retention_days"] == 45
    assert main(["archive", "maintain", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["analyzed"] == ["heartbeats", "perf_samples"] and report["database_bytes"] > 0
    monkeypatch.setenv("AGENTS_PIPELINE_RETENTION", "users=10")
    assert main(["archive", "policy"]) == 2
    assert "unknown table 'users'" in capsys.readouterr().err
