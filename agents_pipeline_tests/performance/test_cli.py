"""`agents-pipeline perf ...` against the real database."""

from __future__ import annotations

import json

import sqlalchemy as sa

from agents_pipeline.cli.main import main


def test_sample_json(db_env, spawn, register, capsys):
    proc = spawn()
    register("cli-agent", pid=proc.pid)
    assert main(["perf", "sample", "--host", "clihost", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["host"] == "clihost" and out["baseline"] is True and out["skipped"] is None
    [agent] = out["agents"]
    assert agent["name"] == "cli-agent" and agent["found"] and agent["rss_bytes"] > 0
    assert out["host_metrics"]["memory_percent"] > 0


def test_set_and_show_thresholds(db_env, engine, register, capsys):
    register("tuned")
    assert main(["perf", "set-threshold", "cpu_percent", "--above", "250", "--for", "60"]) == 0
    assert main(["perf", "set-threshold", "rss_bytes", "--agent", "tuned", "--above", "2e9"]) == 0
    capsys.readouterr()
    assert main(["perf", "thresholds", "--agent", "tuned", "--json"]) == 0
    settings = {s["rule"]: s for s in json.loads(capsys.readouterr().out)["settings"]}
    assert (settings["cpu_percent"]["above"], settings["cpu_percent"]["for_s"]) == (250.0, 60.0)
    assert settings["rss_bytes"]["above"] == 2e9 and "disk_used_percent" not in settings
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT config FROM fleet.agents WHERE name = 'tuned'")).scalar()
    assert stored == {"thresholds": {"rss_bytes": {"above": 2e9}}}


def test_bad_threshold_is_refused_and_nothing_stored(db_env, engine, register, capsys):
    register("strict")
    assert main(["perf", "set-threshold", "disk_used_percent", "--agent", "strict", "--above", "5"]) == 2
    assert "applies to the host" in capsys.readouterr().err
    assert main(["perf", "set-threshold", "cpu_percent", "--above", "-3"]) == 2
    assert "between 0" in capsys.readouterr().err
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT config FROM fleet.agents WHERE name = 'strict'")).scalar() == {}
        assert conn.execute(sa.text(
            "SELECT value FROM fleet.system_config WHERE key = 'performance.thresholds'")).scalar() == {}


def test_rollup_of_an_empty_hour_fails_with_one_line(db_env, capsys):
    assert main(["perf", "rollup", "2026-03-01T10:00Z"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("agents-pipeline: no raw samples for 2026-03-01 10:00 UTC") and "\n" not in err
