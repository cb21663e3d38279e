"""Display reads from a streaming replica (AGENTS_PIPELINE_READ_DATABASE_URL); writes and the
health verdicts stay on the primary; the replica's lag is a metric with a readiness check."""

from __future__ import annotations

import json
import time

import psycopg2
import pytest
import sqlalchemy as sa

from agents_pipeline.cli.main import main
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline.defs.readiness.checklist import check_read_replica
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests import replica


def _sql(cluster: LocalCluster, statement: str) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(cluster.url()))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.fixture
def read_env(primary: LocalCluster, standby: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", primary.url())
    monkeypatch.setenv("AGENTS_PIPELINE_READ_DATABASE_URL", standby.url())
    monkeypatch.delenv("AGENTS_PIPELINE_AGENT_TOKEN", raising=False)


@pytest.fixture
def paused_replay(standby: LocalCluster):
    """Replay paused on the standby: what the primary writes now is received but not visible."""
    _sql(standby, "SELECT pg_wal_replay_pause()")
    try:
        yield
    finally:
        _sql(standby, "SELECT pg_wal_replay_resume()")


def _status_names(capsys) -> list[str]:
    assert main(["status", "--json"]) == 0
    return [row["name"] for row in json.loads(capsys.readouterr().out)["agents"]]


def test_status_reads_the_replica_while_writes_go_to_the_primary(primary, standby, read_env, capsys) -> None:
    assert main(["agents", "register", "seen-by-both", "--period", "60"]) == 0
    replica.wait_caught_up(primary)
    capsys.readouterr()
    assert "seen-by-both" in _status_names(capsys)

    _sql(standby, "SELECT pg_wal_replay_pause()")
    try:
        assert main(["agents", "register", "primary-only"]) == 0          # a write: on the primary
        assert main(["heartbeat", "seen-by-both"]) == 0                   # so is a heartbeat
        capsys.readouterr()
        assert "primary-only" not in _status_names(capsys)                # the replica has not replayed it
        assert _sql(primary, "SELECT count(*) FROM fleet.agents WHERE name = 'primary-only'") == [(1,)]
    finally:
        _sql(standby, "SELECT pg_wal_replay_resume()")
    replica.wait_caught_up(primary)
    assert "primary-only" in _status_names(capsys)


def test_the_resource_reads_from_the_replica_and_judges_on_the_primary(read_env) -> None:
    resource = PostgresResource()
    with resource.read_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one() is True
    with resource.begin() as conn:   # writes and the health evaluation
        assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one() is False


def test_the_read_engine_is_the_primary_when_no_replica_is_set(primary, monkeypatch) -> None:
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", primary.url())
    monkeypatch.delenv("AGENTS_PIPELINE_READ_DATABASE_URL", raising=False)
    with PostgresResource().read_engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_is_in_recovery()")).scalar_one() is False
    check = check_read_replica()
    assert check.passed and "unset" in check.detail and check.metadata == {}


def test_lag_is_a_metric_and_the_check_fails_past_its_bound(primary, standby, read_env, paused_replay,
                                                            monkeypatch) -> None:
    monkeypatch.setenv("AGENTS_PIPELINE_REPLICA_MAX_LAG_S", "1")
    _sql(primary, "INSERT INTO fleet.agents (name) VALUES ('written-while-paused')")
    deadline = time.monotonic() + 20
    while True:   # received (the WAL is there) but not replayed, for more than the bound
        check = check_read_replica()
        if check.metadata["replica_lag_s"] > 1.5 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not check.passed and "BEHIND" in check.detail, check
    assert check.metadata["replica_replay_pending_bytes"] > 0

    _sql(standby, "SELECT pg_wal_replay_resume()")
    replica.wait_caught_up(primary)
    check = check_read_replica()
    assert check.passed and check.metadata["replica_lag_s"] == 0.0, check


def test_the_check_fails_when_the_read_url_names_a_primary(primary, monkeypatch) -> None:
    monkeypatch.setenv("AGENTS_PIPELINE_READ_DATABASE_URL", primary.url())
    check = check_read_replica()
    assert not check.passed and "not a standby" in check.detail


def test_the_replica_lag_reads_zero_when_caught_up(primary, standby) -> None:
    from agents_pipeline.core.replica import lag

    replica.wait_caught_up(primary)
    db = Database(standby.url(), maxconn=1, retry_window=3)
    try:
        found = lag(db)
    finally:
        db.close()
    assert found.in_recovery and found.lag_s == 0.0 and found.replay_pending_bytes == 0
