"""`agents-pipeline langsmith ...` against the local LangSmith and the test database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from agents_pipeline.cli.main import main
from agents_pipeline_tests.langsmith.conftest import PROJECT


def test_sync_then_status(fake, db_env, monkeypatch, capsys):
    monkeypatch.setenv("LANGSMITH_API_KEY", fake.api_key)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", fake.url)
    monkeypatch.setenv("LANGSMITH_PROJECTS", PROJECT)
    now = datetime.now(UTC)
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=3))  # pending
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=2), end_time=now - timedelta(minutes=1))
    assert main(["langsmith", "sync"]) == 0
    assert f"{PROJECT}: 2 read, 2 new, 0 updated, 0 unchanged" in capsys.readouterr().out
    assert main(["langsmith", "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    (project,) = status["projects"]
    assert (project["project"], project["runs_stored"], project["pending"]) == (PROJECT, 2, 1)
    assert status["configured"] is True and status["conversations"] == {"unsent": 0, "failing": 0}
    assert main(["langsmith", "sync", "--start", "2026-13-01", "--end", "2026-11-02"]) == 2
    assert "start '2026-13-01' is not an ISO 8601 date or time" in capsys.readouterr().err


def test_sync_without_key_says_so(db_env, monkeypatch, capsys):
    monkeypatch.delenv("LANGSMITH_API_KEY", raising=False)
    assert main(["langsmith", "push"]) == 2
    assert "LANGSMITH_API_KEY is not set" in capsys.readouterr().err
