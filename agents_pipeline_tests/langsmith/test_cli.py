"""`agents-pipeline langsmith ...` against the local LangSmith and the test database."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from agents_pipeline.cli.main import main
from agents_pipeline.console import Progress
from agents_pipeline.defs.langsmith.client import Redactor, close_client, make_client
from agents_pipeline.defs.langsmith.source import ListRunsSource
from agents_pipeline.defs.langsmith.sync import sync_all
from agents_pipeline_tests.langsmith.conftest import PROJECT
from agents_pipeline_tests.terminal import CLI, run_with_terminal_stderr


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


def test_backfill_shows_progress_on_a_terminal_and_prints_one_json_document(fake, db_env):
    """A two-day backfill reads 8 slices of 6 h: the bar counts runs (runs/s) and the note the
    slices and the time left; stdout holds only the --json result."""
    start = datetime(2026, 1, 10, tzinfo=UTC)
    for i in range(40):
        fake.add_run(PROJECT, start_time=start + timedelta(hours=i), end_time=start + timedelta(hours=i, seconds=5))
    env = {**os.environ, "LANGSMITH_API_KEY": fake.api_key, "LANGSMITH_ENDPOINT": fake.url,
           "LANGSMITH_PROJECTS": PROJECT}
    code, out, shown = run_with_terminal_stderr(
        [*CLI, "langsmith", "sync", "--start", "2026-01-10", "--end", "2026-01-12", "--json"], env)
    assert code == 0, shown
    doc = json.loads(out)
    (project,) = doc["projects"]
    assert doc["ok"] is True and project["project"] == PROJECT and project["runs_fetched"] == 40
    assert project["slices"] == 8 and project["inserted"] == 40 and project["unchanged"] == 0
    assert f"langsmith sync: {PROJECT}" in shown and "runs/s" in shown and "slice 8/8, ETA" in shown


def test_backfill_progress_as_log_lines(fake, engine, settings):
    """What a Dagster backfill run logs: a line per interval (here every update) and a total."""
    start = datetime(2026, 1, 10, tzinfo=UTC)
    for i in range(30):
        fake.add_run(PROJECT, start_time=start + timedelta(hours=i), end_time=start + timedelta(hours=i, seconds=5))
    client, _ = make_client(api_key=fake.api_key, endpoint=fake.url, max_retries=1, backoff_factor=0.01)
    lines: list[str] = []
    try:
        with Progress("LangSmith backfill", unit="runs", log=lines.append, every_s=0) as progress:
            (result,) = sync_all(engine, lambda: ListRunsSource(client), settings, redact=Redactor(fake.api_key),
                                 window=(start, start + timedelta(days=2)), progress=progress)
    finally:
        close_client(client)
    assert result.ok and result.runs_fetched == 30
    assert any(line.startswith(f"LangSmith backfill: {PROJECT}: ") and "runs/s, slice" in line for line in lines)
    assert lines[-1].startswith(f"LangSmith backfill: {PROJECT}: done, 30 runs in"), lines


def test_push_json(fake, db_env, monkeypatch, capsys):
    monkeypatch.setenv("LANGSMITH_API_KEY", fake.api_key)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", fake.url)
    assert main(["langsmith", "push", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and doc["sent"] == 0 and doc["failed"] == 0
