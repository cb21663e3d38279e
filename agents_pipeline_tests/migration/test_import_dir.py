"""sqlite_migration_job reads legacy files only inside AGENTS_PIPELINE_IMPORT_DIR; the CLI is not fenced."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from agents_pipeline.defs.migration.import_dir import IMPORT_DIR_ENV
from agents_pipeline.defs.migration.jobs import SqliteMigrationConfig, sqlite_migration_job
from agents_pipeline.defs.migration.runner import migrate_sqlite
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.migration.legacy_files import make_legacy_file


def _run(path: str, db_url: str) -> dg.ExecuteInProcessResult:
    with dg.instance_for_test() as instance:
        return sqlite_migration_job.execute_in_process(
            run_config=dg.RunConfig(ops={"migrate_sqlite_file": SqliteMigrationConfig(path=path, accept_rejects=True)}),
            resources={"postgres": PostgresResource(url=db_url)}, instance=instance, raise_on_error=False)


@pytest.fixture
def folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """(the import folder, a folder beside it holding a legacy file the job must not read)."""
    inside, outside = tmp_path / "import", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    make_legacy_file(outside / "secret.db")
    monkeypatch.setenv(IMPORT_DIR_ENV, str(inside))
    return inside, outside


def _refused(result: dg.ExecuteInProcessResult, query) -> str:
    assert not result.success
    message = result.failure_data_for_node("migrate_sqlite_file").error.message
    assert query("SELECT count(*) FROM fleet.legacy_sources") == [(0,)]     # nothing was read
    return message


@pytest.mark.parametrize("how", ["absolute", "dotdot", "relative_dotdot", "symlink", "symlinked_folder"])
def test_job_refuses_a_file_outside_the_import_folder(folders, db_url, query, how):
    """Regression: the Launchpad's path was opened as given, so anyone with the UI could make the code
    location copy any SQLite file on its host into PostgreSQL. A path outside the import folder is
    refused, also when it only gets there through '..' or a symbolic link inside the folder."""
    inside, outside = folders
    if how == "symlink":
        (inside / "innocent.db").symlink_to(outside / "secret.db")
    if how == "symlinked_folder":
        (inside / "sub").symlink_to(outside, target_is_directory=True)
    path = {"absolute": str(outside / "secret.db"), "dotdot": f"{inside}/../outside/secret.db",
            "relative_dotdot": "../outside/secret.db", "symlink": str(inside / "innocent.db"),
            "symlinked_folder": "sub/secret.db"}[how]
    message = _refused(_run(path, db_url), query)
    assert f"not a file inside {IMPORT_DIR_ENV}" in message and "symbolic links and '..'" in message


def test_job_refuses_to_run_without_the_import_folder(folders, db_url, query, monkeypatch):
    """Regression: with no import folder configured the job read any path; now it names the variable."""
    inside, _ = folders
    make_legacy_file(inside / "background_agents.db")
    monkeypatch.delenv(IMPORT_DIR_ENV)
    assert f"{IMPORT_DIR_ENV} is not set" in _refused(_run(str(inside / "background_agents.db"), db_url), query)
    monkeypatch.setenv(IMPORT_DIR_ENV, str(inside / "missing"))
    assert "which is not a folder" in _refused(_run(str(inside / "background_agents.db"), db_url), query)


def test_job_reads_a_file_inside_the_import_folder(folders, db_url, query, tmp_path, monkeypatch):
    """Inside the folder, absolute or relative, and through a symbolic link to the folder itself."""
    inside, _ = folders
    make_legacy_file(inside / "background_agents.db")
    assert _run("background_agents.db", db_url).success
    linked = tmp_path / "link-to-import"
    linked.symlink_to(inside, target_is_directory=True)
    monkeypatch.setenv(IMPORT_DIR_ENV, str(linked))
    assert _run(str(linked / "background_agents.db"), db_url).success
    assert query("SELECT name, path FROM fleet.legacy_sources") == [
        ("background_agents.db", str(inside / "background_agents.db"))]


def test_the_cli_is_not_fenced(folders, db_url):
    """The CLI runs as the operator, on files the operator can read anyway: no import folder needed."""
    _, outside = folders
    assert migrate_sqlite(outside / "secret.db", db_url, parallel=False).ok
