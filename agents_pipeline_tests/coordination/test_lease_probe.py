"""The lease-renewal probe made with the heartbeat path's row lock (issue #19): a batch for
several agents renews the due leases of each, those of a row it had to wait for included."""

from __future__ import annotations

import threading
import time

import psycopg2

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline_tests.coordination.conftest import Fleet


def _left_s(fleet: Fleet, task_id: int) -> float:
    return float(fleet.sql("SELECT extract(epoch FROM lease_until - now()) FROM fleet.tasks WHERE task_id = %s",
                           (task_id,))[0][0])


def test_a_batch_for_several_agents_renews_each_agents_due_leases(fleet: Fleet, db_url: str) -> None:
    """Guards the multi-agent lock path: the probe moved from its own statement into the lock
    query, once for the rows taken at once and once for a row that was busy and waited for."""
    producer = fleet.agent("producer")
    workers = {name: fleet.agent(name) for name in ("w1", "w2", "w3")}
    tasks = {}
    for name, state in workers.items():
        producer.submit_task("long")
        (tasks[name],) = state.claim_tasks(None, 1, lease_s=120)
    fleet.sql("UPDATE fleet.tasks SET lease_until = now() + interval '5 seconds', "
              "renew_at = now() - interval '55 seconds' WHERE state = 'claimed'")
    fleet.sql("UPDATE fleet.tasks SET renew_at = now() + interval '1 hour' WHERE task_id = %s",
              (tasks["w3"].task_id,))                           # w3's lease is not due: left alone

    holder = psycopg2.connect(**connect_kwargs(db_url))          # w2's row busy for 200 ms
    with holder.cursor() as cur:
        cur.execute("SELECT 1 FROM fleet.agents WHERE name = 'w2' FOR NO KEY UPDATE")
    releaser = threading.Timer(0.2, holder.commit)
    releaser.start()
    try:
        with SharedState(db_url, retry_window=5) as operator:
            started = time.monotonic()
            results = operator.heartbeat_many([{"agent": name} for name in workers])
            waited = time.monotonic() - started
    finally:
        releaser.join()
        holder.close()
    assert all(not isinstance(r, Exception) for r in results), results
    assert waited >= 0.15                                        # it did wait for w2's row
    assert _left_s(fleet, tasks["w1"].task_id) > 110
    assert _left_s(fleet, tasks["w2"].task_id) > 110
    assert _left_s(fleet, tasks["w3"].task_id) < 6
