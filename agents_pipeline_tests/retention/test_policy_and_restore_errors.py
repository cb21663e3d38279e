"""Refusals: unknown tables, days inside retention, missing or corrupt archive files."""

from __future__ import annotations

from datetime import timedelta

import pytest

from agents_pipeline.core.errors import ConfigurationError, ValidationError
from agents_pipeline.defs.retention import policy, store
from agents_pipeline.defs.retention.archiver import archive_day
from agents_pipeline.defs.retention.parquet_io import ArchiveFileError
from agents_pipeline.defs.retention.restore import restore_day
from agents_pipeline_tests.retention.conftest import OLD_DAY, execute, seed_heartbeats


def test_retention_config_naming_an_unknown_table_is_refused():
    with pytest.raises(ConfigurationError, match="unknown table 'agents'.*allowed: heartbeats"):
        policy.parse_retention("heartbeats=45,agents=10")
    with pytest.raises(ConfigurationError, match="not a number of days"):
        policy.parse_retention("heartbeats=lots")
    with pytest.raises(ConfigurationError, match="outside 2..3650"):
        policy.parse_retention("heartbeats=1")
    with pytest.raises(ValidationError, match="not subject to retention"):
        policy.table_spec("kv_store")


def test_retention_config_overrides_defaults():
    days = policy.parse_retention(" heartbeats = 45 ; alerts=500d")
    assert days["heartbeats"] == 45 and days["alerts"] == 500 and days["perf_samples"] == 30
    assert policy.class_min_days(policy.RAW, days) == 30


def test_day_inside_retention_is_refused_and_nothing_removed(db_url, archive_dir):
    today = policy.utc_today()
    inside = today - timedelta(days=30)
    seed_heartbeats(db_url, inside, 10)
    with pytest.raises(ValidationError, match="still inside its 30-day retention"):
        archive_day(db_url, archive_dir, "heartbeats", inside, 30)
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(10,)]
    assert policy.last_archivable_day(30, today) == today - timedelta(days=31)


def test_archive_folder_is_off_unless_configured(monkeypatch):
    monkeypatch.delenv(policy.ARCHIVE_DIR_ENV, raising=False)
    assert policy.archive_root("postgresql+psycopg2://u@db.example:5432/prod") is None
    # The local default (no URL configured, or the URL of the project-local cluster) archives
    # under the project.
    from agents_pipeline.core.localdb import LocalCluster
    from agents_pipeline.core.settings import PROJECT_DIR

    monkeypatch.delenv("AGENTS_PIPELINE_DATABASE_URL", raising=False)
    assert policy.archive_root(None) == PROJECT_DIR / "archive"
    local = f"postgresql+psycopg2://postgres@/agents_pipeline?host={LocalCluster.default().sockdir}&port=5432"
    assert policy.archive_root(local) == PROJECT_DIR / "archive"
    monkeypatch.setenv(policy.ARCHIVE_DIR_ENV, "relative/archive")
    assert policy.archive_root(None) == PROJECT_DIR / "relative" / "archive"
    monkeypatch.setenv(policy.ARCHIVE_DIR_ENV, "off")
    assert policy.archive_root(None) is None
    monkeypatch.setenv(policy.ARCHIVE_DIR_ENV, "/srv/archive")
    assert str(policy.archive_root("postgresql+psycopg2://u@db.example:5432/prod")) == "/srv/archive"


def test_missing_archive_file_is_detected_on_restore_and_nothing_changes(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 100)
    archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    (store.unit_dir(archive_dir, "heartbeats", OLD_DAY) / store.data_file_name("heartbeats", OLD_DAY, "heartbeats")).unlink()
    with pytest.raises(ArchiveFileError, match="is missing"):
        restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    assert execute(db_url, "SELECT to_regclass(%s)", (f"fleet.heartbeats_p{OLD_DAY:%Y%m%d}",)) == [(None,)]
    with pytest.raises(ArchiveFileError, match="no archive of heartbeats"):
        restore_day(db_url, archive_dir, "heartbeats", OLD_DAY - timedelta(days=1))


def test_corrupt_archive_file_is_detected_on_restore(db_url, archive_dir):
    seed_heartbeats(db_url, OLD_DAY, 100)
    archive_day(db_url, archive_dir, "heartbeats", OLD_DAY, 30)
    path = store.unit_dir(archive_dir, "heartbeats", OLD_DAY) / store.data_file_name("heartbeats", OLD_DAY, "heartbeats")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveFileError, match="is corrupt: sha256"):
        restore_day(db_url, archive_dir, "heartbeats", OLD_DAY)
    assert execute(db_url, "SELECT count(*) FROM fleet.heartbeats") == [(0,)]
    assert execute(db_url, "SELECT count(*) FROM fleet.retention_holds") == [(0,)]
