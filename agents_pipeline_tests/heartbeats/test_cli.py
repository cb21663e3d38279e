"""`agents-pipeline alerts` and `agents-pipeline silence` against the real database."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.core.errors import ValidationError
from agents_pipeline.defs.heartbeats.health import evaluate
from agents_pipeline.defs.heartbeats.operator import parse_duration
from agents_pipeline_tests.heartbeats.helpers import add_agent, agent_row, beat


def test_parse_duration():
    assert [parse_duration(x) for x in ("2h", "90m", "1h30m", "45s", "1d", "120")] == [
        7200, 5400, 5400, 45, 86400, 120]
    with pytest.raises(ValidationError, match="cannot read duration"):
        parse_duration("2 hours please")


def test_silence_sets_and_lifts(db_env, engine, capsys):
    add_agent(engine, "batch")
    assert main(["silence", "batch", "--for", "2h"]) == 0
    assert "alerts silenced until" in capsys.readouterr().out
    with engine.begin() as conn:
        left = conn.exec_driver_sql("SELECT silenced_until - now() FROM fleet.agents WHERE name = 'batch'").scalar()
    assert timedelta(hours=2) - timedelta(seconds=5) < left <= timedelta(hours=2)
    assert main(["silence", "batch", "--clear"]) == 0
    assert agent_row(engine, "batch").silenced_until is None
    assert main(["silence", "nobody", "--for", "1h"]) == 2
    assert "unknown agent 'nobody'" in capsys.readouterr().err
    assert main(["silence", "batch", "--for", "100d"]) == 2
    assert "at most 90 days" in capsys.readouterr().err


def test_alerts_lists_open_and_resolved(db_env, engine, t0, capsys):
    add_agent(engine, "a", period_s=10, grace_s=5, created_at=t0)
    add_agent(engine, "b", period_s=10, grace_s=5, created_at=t0)
    beat(engine, "a", t0 + timedelta(seconds=1))
    beat(engine, "b", t0 + timedelta(seconds=1))
    with engine.begin() as conn:
        evaluate(conn, now=t0 + timedelta(seconds=30), channels=["log"])
    beat(engine, "b", t0 + timedelta(seconds=40))
    with engine.begin() as conn:
        evaluate(conn, now=t0 + timedelta(seconds=41), channels=["log"])
    assert main(["alerts", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(a["agent"], a["resolved_at"] is None) for a in doc["alerts"]] == [("a", True), ("b", False)]
    assert doc["alerts"][1]["duration_s"] == 24.0                             # down 16 -> up 40
    assert main(["alerts", "--open"]) == 0
    out = capsys.readouterr().out
    assert "agent a is down" in out and "agent b" not in out
