"""Worker processes for the task tests, started with multiprocessing's spawn: this module
imports only the agent side (core), so each child starts in a fraction of a second."""

from __future__ import annotations

import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

from agents_pipeline.core.errors import LeaseLostError
from agents_pipeline.core.shared_state import SharedState

LEASE_S = 2.0
STALL_S = 3.0     # longer than the lease: a stalled worker's tasks are taken by the others


def drain(url: str, name: str, token: str, start: Event, stop: Event, out: Queue) -> None:
    """Claims and completes tasks until ``stop``. A task marked ``stall`` stalls its first
    attempt past the lease once per worker, so that another worker takes it over and this one's
    late completion must be refused. Reports (name, completed task ids, refused completions)."""
    done: list[int] = []
    lost = 0
    stalled = False
    with SharedState(url, agent=name, token=token, maxconn=1, retry_window=20) as state:
        start.wait(60)
        while not stop.is_set():
            tasks = state.claim_tasks(None, 5, LEASE_S)
            if not tasks:
                time.sleep(0.05)
                continue
            for task in tasks:
                if task.payload.get("stall") and task.attempt == 1 and not stalled:
                    stalled = True
                    time.sleep(STALL_S)
                try:
                    state.complete(task, {"by": name, "attempt": task.attempt})
                    done.append(task.task_id)
                except LeaseLostError:
                    lost += 1
    out.put((name, done, lost))


def hold(url: str, name: str, token: str, out: Queue) -> None:
    """Heartbeats once, claims three tasks for a long lease, reports them, then waits to be killed."""
    with SharedState(url, agent=name, token=token, maxconn=1, retry_window=20) as state:
        state.heartbeat()
        out.put([t.task_id for t in state.claim_tasks(None, 3, 600)])
        time.sleep(600)


def serve(url: str, name: str, token: str, started: str) -> None:
    """Agent.run with a handler that takes a second per task and notes each task it starts in
    the file ``started``; exits 0 once drained (SIGTERM), 3 if it completed nothing."""
    import sys
    from pathlib import Path

    from agents_pipeline.core.agent import Agent

    def handle(task):
        with Path(started).open("a") as notes:
            notes.write(f"{task.task_id}\n")
        time.sleep(1.0)
        return {"by": name}

    state = SharedState(url, agent=name, token=token, maxconn=2, retry_window=20)
    agent = Agent(name, state=state, interval_s=0.5)
    done = agent.run(handle, batch=3, lease_s=5, idle_s=0.1)
    agent.stop()
    state.close()
    sys.exit(0 if done >= 1 else 3)
