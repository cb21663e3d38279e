"""Backup and recovery through pg_dump/pg_restore, and the operator's commands end to end."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.retention import backup
from agents_pipeline_tests import pg
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, rows_of, seed_heartbeats, seed_history

HB = "SELECT agent_id, received_at, sent_at, kind, message, payload::text FROM fleet.heartbeats"


@pytest.fixture
def empty_db_url(pg_cluster):
    name = f"restore_{uuid.uuid4().hex[:10]}"
    conn = pg.admin_connect(pg_cluster)
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    yield pg_cluster.url(name)
    pg.drop_database(pg_cluster, name)


def test_backup_restored_into_a_fresh_database_has_the_same_counts_and_checksums(db_env, empty_db_url, tmp_path, capsys):
    seed_heartbeats(db_env, OLD_DAY, 400)
    seed_history(db_env, OLD_DAY)
    assert main(["db", "backup", str(tmp_path / "b.dump")]) == 0
    assert "backup written to" in capsys.readouterr().out
    sidecar = json.loads((tmp_path / "b.dump.json").read_text())
    assert sidecar["tables"]["fleet.heartbeats"].startswith("400:")
    assert main(["db", "restore", str(tmp_path / "b.dump"), "--into", empty_db_url]) == 0
    assert "row counts and checksums match" in capsys.readouterr().out
    src = backup.table_fingerprints_for(db_env)
    dst = backup.table_fingerprints_for(empty_db_url)
    assert src == dst and src["fleet.status_changes"].startswith("100:")
    assert rows_of(empty_db_url, HB) == rows_of(db_env, HB)
    # The password never reaches argv: the tools get it through the environment only.
    env = backup.libpq_env("postgresql+psycopg2://u:s3cret@db.example:5433/prod")
    assert env["PGPASSWORD"] == "s3cret" and env["PGHOST"] == "db.example" and env["PGDATABASE"] == "prod"


def test_restore_into_a_database_that_holds_the_schema_is_refused(db_env, tmp_path, capsys):
    path, _ = backup.backup(db_env, tmp_path)
    assert main(["db", "restore", str(path)]) == 1
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
    assert main(["archive", "restore", "agents", OLD_DAY.isoformat()]) == 1
    assert "not subject to retention" in capsys.readouterr().err
    assert main(["archive", "run", "heartbeats", "yesterday"]) == 1
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
    assert main(["archive", "policy"]) == 1
    assert "unknown table 'users'" in capsys.readouterr().err
