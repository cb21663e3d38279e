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
