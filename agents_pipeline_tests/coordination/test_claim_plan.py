"""The claim's plan: it walks tasks_ready_idx, which holds ready tasks in claim order, even when
the statistics are stale. Without that, a queue filled since its last ANALYZE was read whole
through a bitmap and sorted at every claim (2 ms a claim at 5,000 ready tasks, half the queue's
throughput; found by benchmarks/task_queue.py). Measured by the index's tuples read, from the
statistics the claiming session flushes."""

from __future__ import annotations

import psycopg2

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline_tests.coordination.conftest import Fleet

READY = 5000


def _ready_index_reads(cur) -> int:
    cur.execute("SELECT pg_stat_force_next_flush()")
    cur.execute("SELECT 1")                      # a transaction's end: the flush
    cur.execute("SELECT pg_stat_clear_snapshot()")
    cur.execute("SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = 'tasks_ready_idx'")
    return cur.fetchone()[0]


def test_a_claim_reads_a_few_index_entries_even_with_stale_statistics(fleet: Fleet) -> None:
    fleet.register("worker", ("scan",))
    conn = psycopg2.connect(**connect_kwargs(fleet.db_url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("ANALYZE fleet.tasks")      # statistics of an empty queue, then 5,000 tasks
            cur.execute("""INSERT INTO fleet.tasks (kind, capability, payload, submitted_by)
                           SELECT 'scan', 'scan', '{}', agent_id FROM fleet.agents, generate_series(1, %s)
                           WHERE name = 'worker'""", (READY,))
            before = _ready_index_reads(cur)
            # As the operator acting for the agent, so that this session's statistics are the ones flushed.
            cur.execute("SELECT task_id FROM fleet.claim_tasks('worker', NULL, ARRAY['scan'], 10, interval '1 minute')")
            claimed = [r[0] for r in cur.fetchall()]
            reads = _ready_index_reads(cur) - before
            cur.execute("SELECT min(task_id) FROM fleet.tasks")
            first = cur.fetchone()[0]
    finally:
        conn.close()
    assert claimed == list(range(first, first + 10))    # the oldest ten, in claim order
    assert 10 <= reads < 200, f"the claim read {reads} entries of tasks_ready_idx for 10 tasks out of {READY}"
