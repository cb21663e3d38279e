"""The ui domain's commands through `agents-pipeline`'s own entry point."""

from __future__ import annotations

import psycopg2

from agents_pipeline.cli.main import main
from agents_pipeline.core.dsn import connect_kwargs

SMALL = ["--days", "2", "--heartbeat-every", "900", "--sample-every", "3600", "--conversation-every", "3600"]


def _one(url: str, sql: str):
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchone()
    finally:
        conn.close()


def test_demo_seed_then_fleet(db_env, capsys):
    assert main(["demo-seed", "--agents", "2", *SMALL]) == 0
    out = capsys.readouterr().out
    assert out.startswith("seeded 2 days of demo history") and " heartbeats" in out
    assert main(["demo-seed", "--agents", "2", *SMALL]) == 0
    assert "already seeded" in capsys.readouterr().out
    before = _one(db_env, "SELECT count(*) FROM fleet.heartbeats")[0]
    assert main(["demo-fleet", "--agents", "2", "--period", "1", "--duration", "4"]) == 0
    out = capsys.readouterr().out
    assert "demo-planner" in out and "demo-researcher" in out
    after, agents, pids = _one(db_env, "SELECT (SELECT count(*) FROM fleet.heartbeats), "
                                       "array_agg(name ORDER BY name), count(process_pid) FROM fleet.agents")
    # The two agents, and the producer that submits their tasks (issue #18); stopped agents keep no pid.
    assert after > before and agents == ["demo-planner", "demo-producer", "demo-researcher"] and pids == 0


def test_bad_arguments_are_one_line_errors(db_env, capsys):
    assert main(["demo-seed", "--days", "0"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "agents-pipeline: days must be between 1 and 400, got 0"
    assert main(["launch", "some_job", "--ui", "ftp://nowhere"]) == 2
    assert "webserver URL must look like http://host:port" in capsys.readouterr().err
