"""Tasks under real concurrency, in worker processes (not threads): exactly-once completion with
20 competing workers, and a SIGKILLed worker's tasks moving to another agent as soon as the
health evaluation marks its agent down."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from collections import Counter

import psycopg2
import sqlalchemy as sa

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.registry import token_proof
from agents_pipeline.defs.coordination import queue, report
from agents_pipeline_tests.coordination import workers
from agents_pipeline_tests.coordination.conftest import Fleet

SPAWN = multiprocessing.get_context("spawn")


def test_twenty_worker_processes_complete_every_task_exactly_once(fleet: Fleet) -> None:
    """Ten agents with two processes each. Twenty tasks stall their first attempt past the lease,
    so other workers take them over and the stalled attempts' late completions are refused."""
    producer = fleet.agent("producer")
    ids = [producer.submit_task("stall", {"stall": True}, priority=10) for _ in range(20)]
    ids += [producer.submit_task("work", {"n": i}) for i in range(580)]
    logins = [(f"worker-{i}", *fleet.register(f"worker-{i}")) for i in range(10)]
    start, stop, out = SPAWN.Event(), SPAWN.Event(), SPAWN.Queue()
    procs = [SPAWN.Process(target=workers.drain, args=(url, name, token, start, stop, out), daemon=True)
             for name, url, token in logins for _ in range(2)]
    for p in procs:
        p.start()
    start.set()
    deadline = time.monotonic() + 60
    while fleet.sql("SELECT count(*) FROM fleet.tasks WHERE state <> 'done'")[0][0] and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    reports = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(10)

    completed = Counter(task_id for _, done, _ in reports for task_id in done)
    assert sorted(completed) == sorted(ids)
    assert set(completed.values()) == {1}, "a task was completed twice"
    assert sum(lost for _, _, lost in reports) >= 10      # late completions of stalled attempts, refused
    rows = fleet.sql("""SELECT t.task_id, t.state, t.attempts, t.result, a.name FROM fleet.tasks t
                        JOIN fleet.agents a ON a.agent_id = t.claimed_by""")
    by_reporter = {task_id: name for name, done, _ in reports for task_id in done}
    assert {r[1] for r in rows} == {"done"}
    assert all(r[3]["by"] == r[4] == by_reporter[r[0]] and r[3]["attempt"] == r[2] for r in rows)
    stalled = [r for r in rows if r[0] in ids[:20]]
    assert sum(r[2] >= 2 for r in stalled) >= 10          # the stalled attempts were taken over


def test_a_sigkilled_workers_tasks_go_to_another_agent_when_its_agent_is_marked_down(fleet: Fleet) -> None:
    producer = fleet.agent("producer")
    ids = sorted(producer.submit_task("render", {"page": i}) for i in range(3))
    url, token = fleet.register("doomed", period_s=1, grace_s=0)
    out = SPAWN.Queue()
    worker = SPAWN.Process(target=workers.hold, args=(url, "doomed", token, out), daemon=True)
    worker.start()
    assert sorted(out.get(timeout=30)) == ids
    os.kill(worker.pid, signal.SIGKILL)
    worker.join(10)
    rescuer = fleet.agent("rescuer")
    assert rescuer.claim_tasks(None, 3) == []          # leases of 600 s: nothing to take yet

    # The evaluation, driven a few seconds ahead rather than waited for, marks the agent down and
    # releases its tasks at once, the attempt counted.
    down = fleet.sql("""SELECT name, to_status FROM fleet.evaluate_health(now() + interval '5 seconds',
                        ARRAY['log']) WHERE name = 'doomed'""")
    assert down == [("doomed", "down")]
    assert fleet.sql("SELECT state, attempts, last_error FROM fleet.tasks ORDER BY task_id") == [
        ("ready", 1, "released: its agent was marked down (held by doomed)")] * 3
    taken = rescuer.claim_tasks(None, 3)
    assert [(t.task_id, t.attempt) for t in taken] == [(i, 2) for i in ids]
    for task in taken:
        rescuer.complete(task, {"page": task.payload["page"], "by": "rescuer"})
    assert fleet.sql("""SELECT t.state, a.name FROM fleet.tasks t JOIN fleet.agents a ON a.agent_id = t.claimed_by
                        ORDER BY t.task_id""") == [("done", "rescuer")] * 3
    # The task_queue asset shows the move: released from doomed, now done with rescuer.
    engine = sa.create_engine(fleet.db_url)
    try:
        with engine.connect() as conn:
            meta = report.metadata(queue.report(conn))
    finally:
        engine.dispose()
    assert meta["tasks_released"] == 3
    assert [(r.data["task_id"], r.data["state"], r.data["now_with"], r.data["reason"])
            for r in meta["released_tasks"].records] == [
        (i, "done", "rescuer", "released: its agent was marked down (held by doomed)") for i in reversed(ids)]


def test_the_health_evaluation_never_waits_on_task_rows_an_agent_holds(fleet: Fleet) -> None:
    """Guards the evaluator's rule (it must never wait on an agent) on the task path: a down
    agent's session holds one task row locked and is opening its kind's dead-letter alert. The
    evaluation skips the held row, gives up on the alert after 200 ms, releases the rest, and
    releases the held task once the hold ends."""
    producer = fleet.agent("producer")
    url, token = fleet.register("holder", period_s=1, grace_s=0)
    holder = fleet.agent("holder")
    holder.heartbeat()
    poisoned, doomed = (producer.submit_task("k", max_attempts=1) for _ in range(2))
    kept = producer.submit_task("other")
    tasks = {t.task_id: t for t in holder.claim_tasks(None, 3, 600)}
    session = psycopg2.connect(**connect_kwargs(url), options=f"-c agents_pipeline.proof={token_proof(token).hex()}")
    evaluator = psycopg2.connect(**connect_kwargs(fleet.db_url))
    try:
        with session.cursor() as cur:          # left open: row locks on `poisoned` and `kept`, an alert half made
            cur.execute("SELECT fleet.fail_task('holder', NULL, %s, %s::uuid, 'bad input', NULL, false)",
                        (poisoned, tasks[poisoned].attempt_id))
            assert cur.fetchone() == ("dead",)
            cur.execute("SELECT * FROM fleet.extend_task('holder', NULL, %s, %s::uuid, NULL)",
                        (kept, tasks[kept].attempt_id))
        with evaluator, evaluator.cursor() as cur:
            cur.execute("SET LOCAL statement_timeout = '10s'")
            started = time.monotonic()
            cur.execute("SELECT name FROM fleet.evaluate_health(now() + interval '5 seconds', ARRAY['log'])")
            assert cur.fetchall() == [("holder",)]
            assert time.monotonic() - started < 2
        assert fleet.sql("SELECT task_id, state FROM fleet.tasks ORDER BY task_id") == [
            (poisoned, "claimed"), (doomed, "dead"), (kept, "claimed")]   # the session's changes are not committed
        assert fleet.sql("SELECT count(*) FROM fleet.alerts WHERE kind = 'task_dead'") == [(0,)]
        session.rollback()
        with evaluator, evaluator.cursor() as cur:
            cur.execute("SELECT count(*) FROM fleet.evaluate_health(now() + interval '6 seconds', ARRAY['log'])")
    finally:
        session.close()
        evaluator.close()
    assert fleet.sql("SELECT task_id, state FROM fleet.tasks ORDER BY task_id") == [
        (poisoned, "dead"), (doomed, "dead"), (kept, "ready")]
    assert fleet.sql("SELECT alert_key FROM fleet.alerts WHERE kind = 'task_dead' AND resolved_at IS NULL") == [
        ("task_dead:k",)]
