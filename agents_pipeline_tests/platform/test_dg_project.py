"""`dg` works in the project folder from a fresh clone (issue #20): definitions load with no
database and no variable, a command that needs one says what to do in one line, and with a
database Dagster's storage and the resource find it with nothing in dagster.yaml."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import dagster as dg
import psycopg2
import pytest

from agents_pipeline.core import settings
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, free_port
from agents_pipeline.definitions import defs
from agents_pipeline.platform import instance_env
from agents_pipeline.platform.resources import PostgresResource, postgres_resource

VENV_BIN = Path(sys.executable).parent
TIMEOUT_S = 120


def fresh_clone_env(tmp_path: Path) -> dict[str, str]:
    """A shell in a fresh clone: the venv on PATH and nothing else of ours (no DAGSTER_HOME, no
    database variable, no PG*). AGENTS_PIPELINE_HOME points at an empty folder so that a developer's
    own running `make run` cluster cannot stand in for the missing database."""
    keep = {name: os.environ[name] for name in ("HOME", "USER", "LANG", "TZ", "TMPDIR") if name in os.environ}
    return {**keep, "PATH": f"{VENV_BIN}{os.pathsep}/usr/bin{os.pathsep}/bin", "VIRTUAL_ENV": str(VENV_BIN.parent),
            settings.HOME: str(tmp_path / "no-cluster")}


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, cwd=settings.PROJECT_DIR, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    """Waits for ``proc``; a process still running after TIMEOUT_S is killed with its session."""
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"{' '.join(map(str, proc.args))} still running after {TIMEOUT_S} s:\n{(out + err)[-3000:]}")
    return proc.returncode, out, err


def test_dg_checks_and_lists_the_definitions_with_no_database_and_no_variable(tmp_path: Path) -> None:
    """Regression: `dg check defs` and `dg list defs` stopped with a traceback ending in
    PostProcessingError about AGENTS_PIPELINE_DAGSTER_PG_PORT when no variable was set."""
    env = fresh_clone_env(tmp_path)
    # Side by side: each spends most of its few seconds importing and loading the definitions.
    check = start([str(VENV_BIN / "dg"), "check", "defs"], env)
    listing = start([str(VENV_BIN / "dg"), "list", "defs", "--json"], env)
    code, out, err = finish(check)
    assert code == 0, (out + err)[-3000:]
    assert "All definitions loaded successfully" in out + err
    code, out, err = finish(listing)
    assert code == 0, err[-3000:]
    listed = json.loads(out)
    repo = defs.get_repository_def()
    expected = {
        "assets": sorted(key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()),
        "asset_checks": sorted(key.to_user_string() for key in repo.asset_graph.asset_check_keys),
        "jobs": sorted(job.name for job in repo.get_all_jobs() if not job.name.startswith("__ASSET_JOB")),
        "schedules": sorted(schedule.name for schedule in repo.schedule_defs),
        "sensors": sorted(sensor.name for sensor in repo.sensor_defs),
    }
    assert {section: sorted(item.get("asset_key" if section == "assets" else
                                     "key" if section == "asset_checks" else "name")
                            for item in listed[section]) for section in expected} == expected
    assert expected["assets"] and expected["jobs"] and expected["schedules"] and expected["sensors"]
    assert "postgres" in {resource["name"] for resource in listed["resources"]}
    assert not list(settings.PROJECT_DIR.glob(".tmp_dagster_home_*/dagster.yaml"))


def test_commands_that_need_the_database_say_what_to_do_in_one_line(tmp_path: Path) -> None:
    """`dg dev` (and a Dagster command that reads runs) without a database: one line naming
    `make run` and AGENTS_PIPELINE_DATABASE_URL, no traceback, and no service left running."""
    env = fresh_clone_env(tmp_path)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    dev = start([str(VENV_BIN / "dg"), "dev", "-p", str(free_port())], env)
    runs = start([str(VENV_BIN / "dagster"), "run", "list"], {**env, "DAGSTER_HOME": str(home)})
    for proc in (dev, runs):
        code, out, err = finish(proc)
        text = out + err
        advice = [line for line in text.splitlines() if "make run" in line]
        assert code == 1, text[-3000:]
        assert len(advice) == 1 and settings.DATABASE_URL in advice[0], text[-3000:]
        assert advice[0].startswith("Error: ") and "Traceback" not in text, text[-3000:]


def _runs_in_dagster_database(cluster: LocalCluster, run_id: str) -> list[str]:
    conn = psycopg2.connect(**connect_kwargs(cluster.url("dagster")))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
            return [row[0] for row in cur.fetchall()]
    finally:
        conn.close()


@dg.op
def current_database(postgres: PostgresResource) -> str:
    with postgres.begin() as conn:
        return conn.exec_driver_sql("SELECT current_database()").scalar()


@dg.job
def where_job() -> None:
    current_database()


@pytest.mark.parametrize("source", ["variable", "running local cluster"])
def test_the_database_comes_from_the_environment_or_the_running_local_cluster(
        source: str, pg_cluster: LocalCluster, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `dg dev` runs on: with AGENTS_PIPELINE_DATABASE_URL, Dagster's runs land in database
    `dagster` beside it; with nothing set but the project's PostgreSQL running (`make run`), the
    storage and the resource both find it. dagster.yaml names no database in either case."""
    monkeypatch.delenv(instance_env.DAGSTER_URL, raising=False)
    if source == "variable":
        monkeypatch.setenv(settings.DATABASE_URL, db_url)
        monkeypatch.setenv(settings.HOME, str(tmp_path / "no-cluster"))
        expected_database = str(connect_kwargs(db_url)["dbname"])
    else:
        monkeypatch.delenv(settings.DATABASE_URL, raising=False)
        monkeypatch.setenv(settings.HOME, str(pg_cluster.home))   # the cluster `db up` would start
        expected_database = "agents_pipeline"
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    job = dg.Definitions(jobs=[where_job], resources={"postgres": postgres_resource()}).resolve_job_def("where_job")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(instance=instance)
        assert result.output_for_node("current_database") == expected_database
        assert _runs_in_dagster_database(pg_cluster, result.run_id) == ["SUCCESS"]
        instance.delete_run(result.run_id)
    # Neither URL was written into the run's config, where the UI would show it.
    assert "postgresql" not in json.dumps(result.dagster_run.run_config)
