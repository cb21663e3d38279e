"""The Launchpad face: sqlite_migration_job runs with typed config and reports in metadata."""

from __future__ import annotations

import sqlite3

import dagster as dg
import pytest

from agents_pipeline.defs.migration.jobs import LEGACY_IMPORT, SqliteMigrationConfig, sqlite_migration_job
from agents_pipeline.platform.markdown import ZERO_WIDTH_SPACE
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.markdown_oracle import live_markup, table_rows


def _run(path, db_url, **config):
    config.setdefault("accept_rejects", True)   # the dirty file rejects far more than 1 % on purpose
    with dg.instance_for_test() as instance:
        result = sqlite_migration_job.execute_in_process(
            run_config=dg.RunConfig(ops={"migrate_sqlite_file": SqliteMigrationConfig(path=str(path), **config)}),
            resources={"postgres": PostgresResource(url=db_url)}, instance=instance, raise_on_error=False)
        materializations = instance.fetch_materializations(LEGACY_IMPORT.key, limit=10).records
        return result, [m.asset_materialization for m in materializations]


def test_job_reports_the_verified_table_as_asset_metadata(legacy_file, db_url, query):
    result, materializations = _run(legacy_file, db_url, batch_size=5)
    assert result.success
    metadata = materializations[0].metadata
    assert metadata["verified"].value is True
    assert metadata["rows_read"].value == metadata["rows_written"].value + metadata["rows_rejected"].value > 0
    assert "| agent_heartbeats | fleet.heartbeats | migrated |" in metadata["report"].value
    assert query("SELECT count(*) FROM fleet.legacy_runs WHERE ok") == [(1,)]


def test_job_fails_when_verification_fails(legacy_file, db_url, query):
    """Regression: a run whose counts do not add up must fail, not succeed with a note."""
    assert _run(legacy_file, db_url)[0].success
    query("DELETE FROM fleet.alerts WHERE legacy_id = 1")
    result, materializations = _run(legacy_file, db_url)
    assert not result.success
    failure = result.failure_data_for_node("migrate_sqlite_file")
    assert "did not verify" in failure.error.message and "system_alerts" in failure.error.message
    assert materializations[0].metadata["verified"].value is False


def test_config_is_typed_and_bounded():
    with pytest.raises(Exception, match="batch_size"):
        SqliteMigrationConfig(path="x.db", batch_size=0)


def test_definitions_expose_the_job_and_its_asset():
    from agents_pipeline.definitions import defs  # the domain needs the root postgres resource

    assert defs.get_job_def("sqlite_migration_job").name == "sqlite_migration_job"
    assert LEGACY_IMPORT.group_name == "migration" and LEGACY_IMPORT.owners == ["team:agents-platform"]


def test_legacy_names_in_the_report_cannot_add_links_or_images(legacy_file, tmp_path, db_url):
    """Regression (issue #16): table names and the source name come from the legacy file and were
    pasted into the report's markdown as they were: a file could show operators a link or an image."""
    table = "![t](http://evil.example/t.png) [fix](http://evil.example) <img src=x> a|b"
    with sqlite3.connect(legacy_file) as conn:
        conn.execute(f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, note TEXT)')
        conn.execute(f'INSERT INTO "{table}" VALUES (1, \'x\')')  # noqa: S608 - a fixed test name
    renamed = legacy_file.rename(tmp_path / "[ops](www.evil.example).db")
    result, materializations = _run(renamed, db_url)
    assert result.success
    report, description = materializations[0].metadata["report"].value, materializations[0].description
    assert live_markup(report) == [] and live_markup(description) == []
    cells = [row[0].replace(ZERO_WIDTH_SPACE, "") for row in table_rows(report)]
    assert table in cells
    assert "[ops](www.evil.example)" in description.replace("\\", "").replace(ZERO_WIDTH_SPACE, "")
