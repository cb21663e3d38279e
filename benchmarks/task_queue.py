"""The task queue against PgQueuer and Procrastinate, in the same run on the same server (issue #18).

    .venv/bin/pip install -e '.[benchmarks]'      # PgQueuer, Procrastinate, psycopg 3: never product deps
    .venv/bin/python benchmarks/task_queue.py [--tasks 4000] [--workers 1 20] [--rounds 3] [--submit-batch 1 10]

One scratch PostgreSQL cluster with its durable defaults (synchronous_commit on, fsync on), a
database per system. Each system does the same work, through its own client as its users would:

- submit: ``--tasks`` tasks of one kind with the same ~250-byte JSON payload, split over W
  processes, B tasks per call (one transaction) for each B in ``--submit-batch`` (default 1 and
  10, the claims' batch); ours through SharedState.submit_task (B = 1) or submit_tasks with each
  process's own agent, token and database login (authenticated, rate buckets drawn: the agents
  get a rate override so the bucket does not set the pace), PgQueuer through Queries.enqueue (a list of B),
  Procrastinate through Task.defer_async or batch_defer_async.
- claim + complete: ``--tasks`` tasks queued beforehand, drained by W processes, claiming up to 10
  at a time where the library can (ours: claim_tasks(n=10), then complete_and_claim, which
  completes the batch and claims the next in one statement and one commit; PgQueuer:
  dequeue(batch_size=10) then log_jobs for the batch, as its queue manager does;
  Procrastinate fetches and finishes one job per query, by its design) with an empty handler.

A fourth system, ``floor``, is the least any PostgreSQL queue can do with the same durability: a
plain ``INSERT`` of the B payloads per call (autocommit: one round trip, one commit), and a
drain of one ``DELETE ... WHERE id IN (SELECT ... LIMIT 10 FOR UPDATE SKIP LOCKED) RETURNING``
statement per batch (claim and completion at once, no attempt, lease, authentication or rate
limit). Its figures bound what "2x the faster of the two" can mean on this machine.

Throughput is tasks over the wall time from the moment all W processes passed a barrier to the
last one's end. Medians over ``--rounds``; the order of the systems rotates per round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import time
import uuid
from datetime import timedelta

import psycopg2
from common import prepare_database

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, scratch_home

SPAWN = multiprocessing.get_context("spawn")
PAYLOAD = {"doc": 0, "text": "lorem ipsum dolor sit amet " * 8}
BATCH = 10
SYSTEMS = ("agents_pipeline", "pgqueuer", "procrastinate", "floor")


def plain_dsn(url: str) -> str:
    """A libpq URL (no SQLAlchemy driver suffix) for asyncpg and psycopg 3."""
    return url.replace("postgresql+psycopg2://", "postgresql://")


# -- agents_pipeline -------------------------------------------------------------------------------
def ours_prepare(url: str, workers: int) -> dict[str, str]:
    from agents_pipeline.core import registry
    from agents_pipeline.core.connection import Database

    names = [f"bench-{i}" for i in range(max(workers, 1))]
    prepare_database(url, [])
    db = Database(url)
    tokens = {}
    try:
        for name in names:
            tokens[name] = registry.register_agent(db, name).token
            registry.set_capabilities(db, name, ["bench"])
        db.transaction(lambda cur: cur.execute(
            "INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst) "
            "SELECT agent_id, 'tasks', 1e6, 1e6 FROM fleet.agents"))
    finally:
        db.close()
    return tokens


def ours_fill(url: str, n: int) -> None:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("""INSERT INTO fleet.tasks (kind, capability, payload, submitted_by)
                           SELECT 'bench', 'bench', %s::jsonb, (SELECT min(agent_id) FROM fleet.agents)
                           FROM generate_series(1, %s)""", (json.dumps(PAYLOAD), n))
    finally:
        conn.close()


def agent_url(url: str, name: str, token: str) -> str:
    """The agent's own login (password: its token) at the cluster's address (its Unix socket for
    a local cluster): its calls meet the agent path, rate buckets drawn, as an agent host's do;
    the operator's login would skip them."""
    from agents_pipeline.core.dsn import make_url

    kwargs = connect_kwargs(url)
    conn = psycopg2.connect(**kwargs)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT db_login FROM fleet.agents WHERE name = %s", (name,))
            login = cur.fetchone()[0]
    finally:
        conn.close()
    if not login:
        raise SystemExit(f"agent {name} has no login of its own: run the benchmark as a superuser of its cluster")
    return make_url(str(kwargs["dbname"]), user=login, password=token, host=str(kwargs["host"]), port=kwargs["port"])


def ours_worker(url: str, name: str, token: str, mode: str, n: int, batch: int, barrier, out) -> None:
    from agents_pipeline.core.shared_state import SharedState

    state = SharedState(agent_url(url, name, token), agent=name, token=token, maxconn=1)
    state.peers()                      # connect and authenticate before the clock starts
    barrier.wait()
    start = time.perf_counter()
    done = 0
    if mode == "submit" and batch == 1:
        for i in range(n):
            state.submit_task("bench", {**PAYLOAD, "doc": i}, capability="bench")
            done += 1
    elif mode == "submit":
        for i in range(0, n, batch):
            done += len(state.submit_tasks("bench", [{**PAYLOAD, "doc": j} for j in range(i, min(n, i + batch))],
                                           capability="bench"))
    else:
        tasks = state.claim_tasks(["bench"], BATCH, 60)
        while tasks:
            done += len(tasks)
            _, tasks = state.complete_and_claim([(task, None) for task in tasks], ["bench"], BATCH, 60)
    out.put((start, time.perf_counter(), done))
    state.close()


# -- PgQueuer ----------------------------------------------------------------------------------------
async def _pgq_queries(dsn: str):
    import asyncpg
    from pgqueuer.db import AsyncpgDriver
    from pgqueuer.queries import Queries

    conn = await asyncpg.connect(dsn)
    return conn, Queries(AsyncpgDriver(conn))


def pgq_prepare(url: str, workers: int) -> dict[str, str]:
    async def go():
        conn, queries = await _pgq_queries(plain_dsn(url))
        await queries.install()
        await conn.close()
    asyncio.run(go())
    return {f"pgq-{i}": "" for i in range(max(workers, 1))}


def pgq_fill(url: str, n: int) -> None:
    async def go():
        conn, queries = await _pgq_queries(plain_dsn(url))
        body = json.dumps(PAYLOAD).encode()
        for i in range(0, n, 1000):
            k = min(1000, n - i)
            await queries.enqueue(["bench"] * k, [body] * k, [0] * k)
        await conn.close()
    asyncio.run(go())


def pgq_worker(url: str, name: str, token: str, mode: str, n: int, batch: int, barrier, out) -> None:
    from pgqueuer.queries import EntrypointExecutionParameter

    async def go():
        conn, queries = await _pgq_queries(plain_dsn(url))
        barrier.wait()
        start = time.perf_counter()
        done = 0
        if mode == "submit" and batch == 1:
            for i in range(n):
                await queries.enqueue("bench", json.dumps({**PAYLOAD, "doc": i}).encode())
                done += 1
        elif mode == "submit":
            for i in range(0, n, batch):
                k = min(batch, n - i)
                await queries.enqueue(["bench"] * k, [json.dumps({**PAYLOAD, "doc": j}).encode()
                                                      for j in range(i, i + k)], [0] * k)
                done += k
        else:
            manager = uuid.uuid4()
            entry = {"bench": EntrypointExecutionParameter(concurrency_limit=0)}
            while jobs := await queries.dequeue(BATCH, entry, manager, None, timedelta(seconds=60)):
                await queries.log_jobs([(job, "successful", None) for job in jobs])
                done += len(jobs)
        out.put((start, time.perf_counter(), done))
        await conn.close()
    asyncio.run(go())


# -- Procrastinate ---------------------------------------------------------------------------------
def _proc_app(url: str):
    import procrastinate

    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=plain_dsn(url)))

    @app.task(name="bench")
    async def bench(**kwargs) -> None:
        return None

    return app, bench


def proc_prepare(url: str, workers: int) -> dict[str, str]:
    async def go():
        app, _ = _proc_app(url)
        async with app.open_async():
            await app.schema_manager.apply_schema_async()
    asyncio.run(go())
    return {f"proc-{i}": "" for i in range(max(workers, 1))}


def proc_fill(url: str, n: int) -> None:
    async def go():
        app, bench = _proc_app(url)
        async with app.open_async():
            for i in range(0, n, 1000):
                await bench.batch_defer_async(*[{**PAYLOAD, "doc": j} for j in range(i, min(n, i + 1000))])
    asyncio.run(go())


def proc_worker(url: str, name: str, token: str, mode: str, n: int, batch: int, barrier, out) -> None:
    import logging

    logging.getLogger("procrastinate").setLevel(logging.WARNING)

    async def go():
        app, bench = _proc_app(url)
        async with app.open_async():
            await app.connector.execute_query_one_async("SELECT 1")
            barrier.wait()
            start = time.perf_counter()
            done = n
            if mode == "submit" and batch == 1:
                for i in range(n):
                    await bench.defer_async(**{**PAYLOAD, "doc": i})
            elif mode == "submit":
                for i in range(0, n, batch):
                    await bench.batch_defer_async(*[{**PAYLOAD, "doc": j} for j in range(i, min(n, i + batch))])
            else:
                await app.run_worker_async(concurrency=1, wait=False, install_signal_handlers=False,
                                           listen_notify=False, delete_jobs="never")
                done = 0
            out.put((start, time.perf_counter(), done))
    asyncio.run(go())


# -- the floor -------------------------------------------------------------------------------------
def floor_prepare(url: str, workers: int) -> dict[str, str]:
    sql(url, "CREATE TABLE IF NOT EXISTS floor_tasks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, "
             "payload jsonb NOT NULL)")
    return {f"floor-{i}": "" for i in range(max(workers, 1))}


def floor_fill(url: str, n: int) -> None:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute("INSERT INTO floor_tasks (payload) SELECT %s::jsonb FROM generate_series(1, %s)",
                        (json.dumps(PAYLOAD), n))
    finally:
        conn.close()


def floor_worker(url: str, name: str, token: str, mode: str, n: int, batch: int, barrier, out) -> None:
    conn = psycopg2.connect(**connect_kwargs(url))
    conn.autocommit = True
    cur = conn.cursor()
    barrier.wait()
    start = time.perf_counter()
    done = 0
    if mode == "submit":
        for i in range(0, n, batch):
            docs = [json.dumps({**PAYLOAD, "doc": j}) for j in range(i, min(n, i + batch))]
            cur.execute("INSERT INTO floor_tasks (payload) SELECT unnest(%s::jsonb[])", (docs,))
            done += len(docs)
    else:
        while True:
            cur.execute("DELETE FROM floor_tasks WHERE id IN (SELECT id FROM floor_tasks ORDER BY id LIMIT %s "
                        "FOR UPDATE SKIP LOCKED) RETURNING id, payload", (BATCH,))
            got = len(cur.fetchall())
            if not got:
                break
            done += got
    out.put((start, time.perf_counter(), done))
    conn.close()


PREPARE = {"agents_pipeline": ours_prepare, "pgqueuer": pgq_prepare, "procrastinate": proc_prepare,
           "floor": floor_prepare}
FILL = {"agents_pipeline": ours_fill, "pgqueuer": pgq_fill, "procrastinate": proc_fill, "floor": floor_fill}
WORKER = {"agents_pipeline": ours_worker, "pgqueuer": pgq_worker, "procrastinate": proc_worker,
          "floor": floor_worker}
REMAINING = {
    "agents_pipeline": "SELECT count(*) FROM fleet.tasks WHERE state <> 'done'",
    "pgqueuer": "SELECT count(*) FROM pgqueuer",
    "procrastinate": "SELECT count(*) FROM procrastinate_jobs WHERE status <> 'succeeded'",
    "floor": "SELECT count(*) FROM floor_tasks",
}
TRUNCATE = {
    "agents_pipeline": "TRUNCATE fleet.tasks",
    "pgqueuer": "TRUNCATE pgqueuer, pgqueuer_log",
    "procrastinate": "TRUNCATE procrastinate_jobs CASCADE",
    "floor": "TRUNCATE floor_tasks",
}


def sql(url: str, statement: str) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(url))
    conn.autocommit = True            # CREATE DATABASE runs outside a transaction
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def measure(system: str, url: str, tokens: dict[str, str], mode: str, tasks: int, workers: int,
            batch: int = BATCH) -> float:
    sql(url, TRUNCATE[system])
    if mode == "drain":
        FILL[system](url, tasks)
    barrier = SPAWN.Barrier(workers)
    out = SPAWN.Queue()
    names = list(tokens)[:workers]
    share = [tasks // workers + (1 if i < tasks % workers else 0) for i in range(workers)]
    procs = [SPAWN.Process(target=WORKER[system], args=(url, names[i], tokens[names[i]], mode, share[i], batch, barrier, out))
             for i in range(workers)]
    for p in procs:
        p.start()
    results = [out.get(timeout=600) for _ in procs]
    for p in procs:
        p.join(60)
    elapsed = max(r[1] for r in results) - min(r[0] for r in results)
    left = sql(url, REMAINING[system])[0][0]
    expected_left = tasks if mode == "submit" else 0
    if left != expected_left:
        raise SystemExit(f"{system} {mode}: {left} tasks left, expected {expected_left}")
    return tasks / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--submit-batch", type=int, nargs="+", default=[1, BATCH],
                        help="tasks per submitting call, each measured (default: 1 and the claims' 10)")
    args = parser.parse_args()
    cluster = LocalCluster(scratch_home("ap-bench-queue-"))
    cluster.up()
    try:
        urls, tokens = {}, {}
        for system in SYSTEMS:
            name = system.replace("_", "")
            sql(cluster.url(), f"CREATE DATABASE {name}")
            urls[system] = cluster.url(name)
            tokens[system] = PREPARE[system](urls[system], max(args.workers))
        figures: dict[tuple[str, str, int], list[float]] = {}
        modes = [(f"submit{b}", "submit", b) for b in args.submit_batch] + [("drain", "drain", BATCH)]
        for rnd in range(args.rounds):
            order = SYSTEMS[rnd % len(SYSTEMS):] + SYSTEMS[:rnd % len(SYSTEMS)]
            for key, mode, batch in modes:
                for workers in args.workers:
                    for system in order:
                        rate = measure(system, urls[system], tokens[system], mode, args.tasks, workers, batch)
                        figures.setdefault((key, system, workers), []).append(rate)
                        print(f"round {rnd + 1} {key:8} {system:15} {workers:2} processes: {rate:8.0f} tasks/s "
                              f"(load {open('/proc/loadavg').read().split()[0]})", flush=True)
        print(f"\n{args.tasks} tasks, {args.rounds} rounds, {os.cpu_count()} cores; "
              f"load {open('/proc/loadavg').read().strip()}")
        print("| metric | processes | agents_pipeline | PgQueuer | Procrastinate | vs the faster of the two "
              "| floor | the floor vs the faster of the two |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        labels = [(f"submit{b}", f"submit, {b} per call") for b in args.submit_batch]
        for mode, label in [*labels, ("drain", f"claim + complete, {BATCH} per claim")]:
            for workers in args.workers:
                med = {s: statistics.median(figures[(mode, s, workers)]) for s in SYSTEMS}
                best = max(med["pgqueuer"], med["procrastinate"])
                print(f"| {label} | {workers} | {med['agents_pipeline']:,.0f} | {med['pgqueuer']:,.0f} | "
                      f"{med['procrastinate']:,.0f} | {med['agents_pipeline'] / best:.2f}x | {med['floor']:,.0f} | "
                      f"{med['floor'] / best:.2f}x |")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
