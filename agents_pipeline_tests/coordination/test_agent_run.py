"""Agent.run: an agent as a task worker. On SIGTERM it finishes the task in hand, gives back the
tasks it claimed but had not started (no attempt counted) and stops cleanly; its heartbeats say
where it is in its lifecycle; a handler's exception fails the task, not the agent."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from pathlib import Path

from agents_pipeline.core.agent import Agent
from agents_pipeline_tests.coordination import workers
from agents_pipeline_tests.coordination.conftest import Fleet

SPAWN = multiprocessing.get_context("spawn")


def test_sigterm_drains_finishes_the_task_in_hand_and_gives_back_the_rest(fleet: Fleet, tmp_path: Path) -> None:
    producer = fleet.agent("producer")
    ids = [producer.submit_task("render", {"page": i}) for i in range(6)]
    url, token = fleet.register("renderer")
    started = tmp_path / "started"
    worker = SPAWN.Process(target=workers.serve, args=(url, "renderer", token, str(started)), daemon=True)
    worker.start()
    deadline = time.monotonic() + 30
    while not (started.exists() and started.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(worker.pid, signal.SIGTERM)                 # during the first task of a batch of three
    worker.join(20)
    assert worker.exitcode == 0
    assert started.read_text().split() == [str(ids[0])]
    assert fleet.sql("SELECT task_id, state, attempts FROM fleet.tasks ORDER BY task_id") == [
        (ids[0], "done", 1), *[(i, "ready", 0) for i in ids[1:]]]
    lifecycle = [r[0] for r in fleet.sql("""SELECT h.payload ->> 'lifecycle' FROM fleet.heartbeats h
                                            JOIN fleet.agents a USING (agent_id) WHERE a.name = 'renderer'
                                            ORDER BY h.received_at""")]
    assert lifecycle[-1] == "stopped" and "running" in lifecycle
    # Another agent takes the given-back tasks at once, as first attempts.
    assert [(t.task_id, t.attempt) for t in producer.claim_tasks(None, 10)] == [(i, 1) for i in ids[1:]]


def test_a_handlers_exception_fails_the_task_and_the_agent_keeps_working(fleet: Fleet) -> None:
    producer, worker = fleet.agent("producer"), fleet.agent("worker")
    ids = [producer.submit_task("parse", payload) for payload in ({"ok": 1}, {"boom": True}, {"ok": 2})]
    agent = Agent("worker", state=worker, interval_s=60)
    seen = []

    def handle(task):
        seen.append(task.task_id)
        if len(seen) == 3:
            agent.drain()
        if task.payload.get("boom"):
            raise RuntimeError("cannot parse")
        return {"parsed": task.payload["ok"]}

    result = {}
    runner = threading.Thread(target=lambda: result.update(done=agent.run(handle, idle_s=0.05, lease_s=180)))
    runner.start()
    runner.join(20)
    agent.stop()
    assert result == {"done": 2} and seen == ids
    assert fleet.sql("SELECT task_id, state, result, last_error FROM fleet.tasks ORDER BY task_id") == [
        (ids[0], "done", {"parsed": 1}, None), (ids[1], "ready", None, "RuntimeError: cannot parse"),
        (ids[2], "done", {"parsed": 2}, None)]


def test_lifecycle_is_kept_on_the_agent_row_and_shown_by_status_and_agent_health(db_url, fleet, capsys, monkeypatch):
    """The registry keeps the latest lifecycle an agent sent, so the UI reads it without scanning
    heartbeats; a heartbeat that says nothing of it (a shell ping) leaves it as it was."""
    import sqlalchemy as sa

    from agents_pipeline.cli.main import main
    from agents_pipeline.defs.heartbeats.health import summarize
    from agents_pipeline.defs.heartbeats.report import metadata, not_up_table

    def lifecycle() -> str | None:
        return fleet.sql("SELECT lifecycle FROM fleet.agents WHERE name = 'cycler'")[0][0]

    state = fleet.agent("cycler")
    agent = Agent("cycler", state=state, interval_s=60)
    with agent:
        deadline = time.monotonic() + 10               # the thread's first heartbeat says 'running'
        while lifecycle() != "running" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lifecycle() == "running"
        state.heartbeat(message="a shell ping")                            # no payload: kept
        state.heartbeat(payload={"lifecycle": "exploded"})                # not a state: ignored
        assert lifecycle() == "running"
        state.heartbeat(payload={"lifecycle": "draining"})
        assert lifecycle() == "draining"
        engine = sa.create_engine(db_url)
        with engine.connect() as conn:
            summary = summarize(conn)
        engine.dispose()
        assert metadata(summary)["lifecycle_draining"] == 1 and metadata(summary)["lifecycle_running"] == 0
        assert "| cycler | new |" in not_up_table(summary) and "| draining |" in not_up_table(summary)
    assert lifecycle() == "stopped"                                       # the last heartbeat of stop()
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", db_url)
    assert main(["status"]) == 0
    assert "stopped" in [line.split()[2] for line in capsys.readouterr().out.splitlines() if "cycler" in line][0]
