"""Readiness checks: each passes on a healthy system and fails, naming the cause, when broken."""

from __future__ import annotations

import time

import dagster as dg
import psycopg2
from dagster._core.definitions.selector import InstigatorSelector
from dagster._core.scheduler.instigation import InstigatorType, TickData, TickStatus
from dagster._utils.error import SerializableErrorInfo

from agents_pipeline.cli.main import main
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.defs.readiness.checklist import READINESS_AGENT, database_checks
from agents_pipeline.defs.readiness.instigators import daemon_check, instigator_checks, summarise


def _status(db_url: str, sql: str, params=()) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(db_url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def test_database_checks_pass_and_do_not_count_down_agents(db_url, state):
    state.db.transaction(lambda cur: cur.execute(
        "INSERT INTO fleet.agents (name, status) VALUES ('gone', 'down'), ('fine', 'up')"))
    checks, agents = database_checks(db_url)
    assert [(c.name, c.passed) for c in checks] == [
        ("environment", True), ("database", True), ("schema_version", True), ("heartbeat_path", True),
        ("agent_boundary", True), ("read_replica", True)]
    assert agents == {"down": 1, "up": 1}
    assert checks[2].metadata["schema_version"] == checks[2].metadata["latest_version"] > 0
    # The probe went through the agent API with a token and left the readiness agent paused,
    # so its silence between runs never raises an alert.
    rows = _status(db_url, """SELECT a.paused, a.heartbeat_count, h.message FROM fleet.agents a
                              JOIN fleet.heartbeats h USING (agent_id) WHERE a.name = %s""", (READINESS_AGENT,))
    assert len(rows) == 1 and rows[0][0] is True and rows[0][1] == 1 and rows[0][2].startswith("readiness probe")
    checks_again, _ = database_checks(db_url)
    assert all(c.passed for c in checks_again)


def test_schema_behind_fails_with_the_fix(db_url):
    _status(db_url, "DELETE FROM public.agents_pipeline_migrations WHERE version = "
                    "(SELECT max(version) FROM public.agents_pipeline_migrations)")
    checks, _ = database_checks(db_url)
    schema = next(c for c in checks if c.name == "schema_version")
    assert not schema.passed and "agents-pipeline db migrate" in schema.detail


def test_unreachable_database_fails_fast_and_skips_the_rest():
    url = "postgresql+psycopg2://postgres:secret-pw@127.0.0.1:1/nowhere"
    started = time.monotonic()
    checks, agents = database_checks(url)
    assert time.monotonic() - started < 15
    assert [(c.name, c.passed) for c in checks] == [
        ("environment", True), ("database", False), ("schema_version", False), ("heartbeat_path", False),
        ("agent_boundary", False), ("read_replica", True)]   # no replica set: nothing to fail
    assert "secret-pw" not in " ".join(c.detail for c in checks)
    assert agents == {}


def _repo() -> dg.RepositoryDefinition:
    @dg.asset
    def thing() -> None:
        return None

    job = dg.define_asset_job("thing_job", selection=[thing])
    schedule = dg.ScheduleDefinition(name="thing_schedule", job=job, cron_schedule="0 * * * *",
                                     default_status=dg.DefaultScheduleStatus.RUNNING)

    @dg.sensor(job=job, default_status=dg.DefaultSensorStatus.STOPPED)
    def thing_sensor():
        return None

    return dg.Definitions(assets=[thing], jobs=[job], schedules=[schedule], sensors=[thing_sensor]).get_repository_def()


def test_instigator_checks_read_states_ticks_and_runs(pg_instance):
    repo = _repo()
    checks = {c.name: c for c in instigator_checks(pg_instance, repo)}
    assert checks["schedule:thing_schedule"].passed and "no tick yet" in checks["schedule:thing_schedule"].detail
    assert not checks["sensor:thing_sensor"].passed and "stopped" in checks["sensor:thing_sensor"].detail

    selector_id = InstigatorSelector(location_name="agents_pipeline", repository_name=repo.name, name="thing_schedule").get_id()
    pg_instance.create_tick(TickData(
        instigator_origin_id="origin", instigator_name="thing_schedule", instigator_type=InstigatorType.SCHEDULE,
        status=TickStatus.FAILURE, timestamp=time.time(), selector_id=selector_id,
        error=SerializableErrorInfo("ConnectionError: database went away\nmore", [], "ConnectionError"),
    ))
    failed = {c.name: c for c in instigator_checks(pg_instance, repo)}["schedule:thing_schedule"]
    assert not failed.passed and "latest tick failed: ConnectionError: database went away" == failed.detail

    pg_instance.create_tick(TickData(
        instigator_origin_id="origin", instigator_name="thing_schedule", instigator_type=InstigatorType.SCHEDULE,
        status=TickStatus.SUCCESS, timestamp=time.time() + 1, selector_id=selector_id, run_ids=[]))
    run = pg_instance.create_run_for_job(repo.get_job("thing_job"), tags={"dagster/schedule_name": "thing_schedule"})
    pg_instance.report_run_failed(run)
    failed = {c.name: c for c in instigator_checks(pg_instance, repo)}["schedule:thing_schedule"]
    assert not failed.passed and failed.detail == f"latest run {run.run_id[:8]} failed"
    folded = summarise(instigator_checks(pg_instance, repo))
    assert not folded.passed and folded.metadata == {"instigators_checked": 2, "instigators_failing": 2}


def test_daemon_check_fails_without_a_daemon(pg_instance):
    check = daemon_check(pg_instance)
    assert not check.passed and "SENSOR" in check.detail and "dagster-daemon run" in check.detail


def test_readiness_cli_exits_non_zero_on_failure_and_zero_when_ready(db_env, capsys, monkeypatch):
    assert main(["readiness", "--skip-dagster"]) == 0
    out = capsys.readouterr().out
    assert "PASS  heartbeat_path" in out and out.rstrip().endswith("ready")
    _status(db_env, "DELETE FROM public.agents_pipeline_migrations WHERE version = "
                    "(SELECT max(version) FROM public.agents_pipeline_migrations)")
    assert main(["readiness", "--skip-dagster"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  schema_version" in out and "NOT READY: 1 of 6 checks failed" in out


def test_agent_boundary_names_what_a_superuser_must_still_do(db_url):
    """Regression guard: where the migration could not revoke advisory locks from PUBLIC (no
    superuser), readiness must say so rather than pass."""
    _status(db_url, "GRANT EXECUTE ON FUNCTION pg_catalog.pg_advisory_lock(bigint) TO PUBLIC")
    checks, _ = database_checks(db_url)
    boundary = next(c for c in checks if c.name == "agent_boundary")
    assert not boundary.passed
    assert "advisory locks" in boundary.detail and "grant-agent" in boundary.detail
    assert boundary.metadata == {"agent_advisory_locks": True, "agent_temp_file_limit": True, "signaller_role": True}
