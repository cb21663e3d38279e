"""Heartbeat ingest: SharedState with 1 and 50 concurrent writers, the batch path, and pgbench
at 50 clients calling the same SQL, all measured in one run on one fresh cluster.

    .venv/bin/python benchmarks/heartbeat_ingest.py [--seconds 8] [--repeats 3]

Prints one line per measurement and the medians; the ratio is SharedState at 50 writers over
pgbench at 50 clients. The cluster uses PostgreSQL's durable defaults (fsync, synchronous
commit), as a production server would.

The agent boundary's cost: in the same run, pgbench at 50 clients logs in as the agent role and
sends each heartbeat with its agent's token, once into a database at the schema as it was before
the boundary (0011: the token in the call, no caps or buckets) and once into the current one
(the proof in the call, caps, a token bucket drawn on every heartbeat, with limits high enough
that nothing is refused). The ratio current / before is the boundary's price per heartbeat.

With --baseline-rev REV, a third database at the current schema gets the heartbeat functions
(store_heartbeats, record_heartbeats) as they were at git revision REV, the same agents and
tokens, and pgbench as the agent login runs against it and the current one back to back in each
round: the ratio current / REV is a change's price per heartbeat, measured in one run. Before
the rounds, one session sends heartbeats into each database alternately (no concurrency, so no
lock waits): the same ratio for the functions' own cost.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2
from common import prepare_database, schema_before

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, find_pg_bin, scratch_home
from agents_pipeline.core.roles import roles
from agents_pipeline.core.shared_state import SharedState

AGENTS = 50
PGBENCH_SQL = """\\set n random(0, 49)
SELECT * FROM fleet.record_heartbeats(ARRAY['agent-' || :n]::text[], ARRAY[NULL]::bytea[], ARRAY['ok']::text[],
    ARRAY[now()]::timestamptz[], ARRAY[NULL]::text[], ARRAY[NULL]::jsonb[]);
"""

# The same heartbeat as the agent login with agent n's token ('apt_bench_<n>'): before the
# boundary the token itself was the argument; now its proof (SHA-256) is, computed here in SQL so
# that both scripts do the same work on the client side of the statement.
AGENT_SQL_BEFORE = """\\set n random(0, 49)
SELECT * FROM fleet.record_heartbeats(ARRAY['agent-' || :n]::text[], ARRAY['apt_bench_' || :n]::text[],
    ARRAY['ok']::text[], ARRAY[now()]::timestamptz[], ARRAY[NULL]::text[], ARRAY[NULL]::jsonb[]);
"""
AGENT_SQL_NOW = """\\set n random(0, 49)
SELECT * FROM fleet.record_heartbeats(ARRAY['agent-' || :n]::text[],
    ARRAY[sha256(convert_to('apt_bench_' || :n, 'UTF8'))]::bytea[],
    ARRAY['ok']::text[], ARRAY[now()]::timestamptz[], ARRAY[NULL]::text[], ARRAY[NULL]::jsonb[]);
"""
BEFORE_BOUNDARY = 11


def prepare_agent_logins(cluster: LocalCluster) -> str:
    """Gives agent-n the token 'apt_bench_<n>' in the current database (stored as the hash of its
    proof, limits lifted so nothing is refused) and builds database 'before_boundary' at 0011 with
    the same agents and tokens (stored as 0011 stored them). Returns that database's name."""
    admin = psycopg2.connect(**connect_kwargs(cluster.url()))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("""UPDATE fleet.agents SET token_hash = sha256(sha256(convert_to(
                           'apt_bench_' || substr(name, 7), 'UTF8'))) WHERE name LIKE 'agent-%'""")
        cur.execute("""UPDATE fleet.system_config SET value = '{"rate_per_s": 1e9, "burst": 1e9}'
                       WHERE key = 'rate_limit:heartbeats'""")
        cur.execute("CREATE DATABASE before_boundary")
    admin.close()
    conn = psycopg2.connect(**connect_kwargs(cluster.url("before_boundary")))
    try:
        migrations.migrate(conn, schema_before(BEFORE_BOUNDARY))
        with conn.cursor() as cur:
            cur.execute("""INSERT INTO fleet.agents (name, token_hash)
                           SELECT 'agent-' || n, sha256(convert_to('apt_bench_' || n, 'UTF8'))
                           FROM generate_series(0, %s - 1) n""", (AGENTS,))
    finally:
        conn.close()
    return "before_boundary"


def prepare_baseline(cluster: LocalCluster, rev: str) -> str:
    """Database 'baseline': the current schema and agents, the heartbeat functions at ``rev``."""
    admin = psycopg2.connect(**connect_kwargs(cluster.url("postgres")))  # not connected to the template
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("CREATE DATABASE baseline TEMPLATE agents_pipeline")
    admin.close()
    conn = psycopg2.connect(**connect_kwargs(cluster.url("baseline")))
    try:
        for name in ("store_heartbeats", "record_heartbeats"):
            text = subprocess.run(["git", "show", f"{rev}:sql/functions/{name}.sql"], capture_output=True,
                                  text=True, check=True, cwd=Path(__file__).resolve().parents[1]).stdout
            with conn.cursor() as cur:
                cur.execute(text)
        with conn.cursor() as cur:
            cur.execute("SELECT fleet.apply_security()")
        conn.commit()
    finally:
        conn.close()
    return "baseline"


def serial_rate(cluster: LocalCluster, dbname: str, calls: int) -> float:
    """Heartbeats per second from one session, one agent, a commit each: the function's own cost,
    with no lock waits (under a heavily loaded machine pgbench's 50 clients hit the heartbeat
    path's 500 ms lock timeout and abort)."""
    conn = psycopg2.connect(**connect_kwargs(cluster.url(dbname)))
    try:
        with conn.cursor() as cur:
            started = time.perf_counter()
            for i in range(calls):
                cur.execute("""SELECT * FROM fleet.record_heartbeats(ARRAY[%s]::text[], ARRAY[NULL]::bytea[],
                                   ARRAY['ok']::text[], ARRAY[now()]::timestamptz[], ARRAY[NULL]::text[],
                                   ARRAY[NULL]::jsonb[])""", (f"agent-{i % AGENTS}",))
                cur.fetchall()
                conn.commit()
            return calls / (time.perf_counter() - started)
    finally:
        conn.close()


def compare_serial(cluster: LocalCluster, baseline: str, rev: str, repeats: int, calls: int = 2000) -> None:
    """The current heartbeat functions against ``rev``'s, one session each, alternating."""
    now, old = [], []
    for r in range(repeats * 2 + 1):
        pair = [(now, "agents_pipeline"), (old, baseline)]
        for into, dbname in pair if r % 2 == 0 else pair[::-1]:
            into.append(serial_rate(cluster, dbname, calls))
    ratios = [a / b for a, b in zip(now, old, strict=True)]
    print(f"one session, {calls} heartbeats per run, {len(now)} runs each, alternating: now median "
          f"{statistics.median(now):,.0f}/s, at {rev} median {statistics.median(old):,.0f}/s; ratio "
          f"{statistics.median(now) / statistics.median(old):.2f} (per pair {', '.join(f'{x:.2f}' for x in ratios)})",
          flush=True)


def timed_threads(url: str, writers: int, seconds: float) -> float:
    """Heartbeats per second from ``writers`` threads sharing one SharedState."""
    done = [0] * writers
    stop = threading.Event()
    with SharedState(url, maxconn=4) as shared:
        shared.heartbeat("agent-0")  # warm the pool

        def loop(i: int) -> None:
            name = f"agent-{i % AGENTS}"
            while not stop.is_set():
                shared.heartbeat(name)
                done[i] += 1

        threads = [threading.Thread(target=loop, args=(i,)) for i in range(writers)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    return sum(done) / elapsed


def timed_batches(url: str, seconds: float, batch: int = 2000) -> float:
    items = [{"agent": f"agent-{i % AGENTS}"} for i in range(batch)]
    count = 0
    with SharedState(url) as shared:
        shared.heartbeat_many(items[:10])
        started = time.perf_counter()
        while time.perf_counter() - started < seconds:
            results = shared.heartbeat_many(items)
            count += len(results)
        elapsed = time.perf_counter() - started
    return count / elapsed


def pgbench(cluster: LocalCluster, dbname: str, seconds: float, clients: int = 50, *,
            sql: str = PGBENCH_SQL, user: str = "postgres") -> float:
    script = Path(tempfile.mkdtemp()) / "heartbeat.sql"
    script.write_text(sql)
    os.chmod(script.parent, 0o755)
    os.chmod(script, 0o644)
    exe = find_pg_bin() / "pgbench"
    state = cluster.state()
    proc = subprocess.run(
        [str(exe), "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), "-f", str(script),
         "-h", str(cluster.sockdir), "-p", str(state["port"]), "-U", user, dbname],
        capture_output=True, text=True,
    )
    shutil.rmtree(script.parent, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pgbench failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    match = re.search(r"tps = ([\d.]+)", proc.stdout)
    if not match:
        raise RuntimeError(f"pgbench printed no tps: {proc.stdout[-500:]}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-rev", default=None,
                        help="also time the agent-login path with the heartbeat functions of this git revision")
    args = parser.parse_args()

    home = scratch_home("ap-bench-")
    cluster = LocalCluster(home)
    cluster.up()
    try:
        url = cluster.url()
        prepare_database(url, [f"agent-{i}" for i in range(AGENTS)])
        before = prepare_agent_logins(cluster)
        baseline = prepare_baseline(cluster, args.baseline_rev) if args.baseline_rev else None
        agent = roles().agent
        if baseline:
            compare_serial(cluster, baseline, args.baseline_rev, args.repeats)

        results: dict[str, list[float]] = {"sharedstate_1": [], "sharedstate_50": [], "batch": [], "pgbench_50": [],
                                           "agent_before_boundary": [], "agent_now": []}
        if baseline:
            results[f"agent_at_{args.baseline_rev}"] = []
        for r in range(args.repeats):
            results["sharedstate_1"].append(timed_threads(url, 1, args.seconds))
            results["sharedstate_50"].append(timed_threads(url, 50, args.seconds))
            results["batch"].append(timed_batches(url, args.seconds))
            results["pgbench_50"].append(pgbench(cluster, "agents_pipeline", args.seconds))
            # the two agent-login runs back to back, their order alternating between rounds
            pair = [("agent_before_boundary", before, AGENT_SQL_BEFORE), ("agent_now", "agents_pipeline", AGENT_SQL_NOW)]
            if baseline:
                pair.append((f"agent_at_{args.baseline_rev}", baseline, AGENT_SQL_NOW))
            for key, dbname, sql in pair if r % 2 == 0 else pair[::-1]:
                results[key].append(pgbench(cluster, dbname, args.seconds, sql=sql, user=agent))
            print(f"round {r + 1}: " + ", ".join(f"{k}={v[-1]:,.0f}/s" for k, v in results.items()), flush=True)
        medians = {k: statistics.median(v) for k, v in results.items()}
        print(f"cores={os.cpu_count()} python={sys.version.split()[0]} seconds={args.seconds} repeats={args.repeats}")
        for key, value in medians.items():
            print(f"median {key}: {value:,.0f} heartbeats/s")
        print(f"ratio sharedstate_50 / pgbench_50: {medians['sharedstate_50'] / medians['pgbench_50']:.2f}")
        print(f"ratio sharedstate_1 / pgbench_50: {medians['sharedstate_1'] / medians['pgbench_50']:.2f}")
        ratios = [now / old for now, old in zip(results["agent_now"], results["agent_before_boundary"], strict=True)]
        print(f"ratio agent_now / agent_before_boundary: {medians['agent_now'] / medians['agent_before_boundary']:.2f} "
              f"(per round {', '.join(f'{x:.2f}' for x in ratios)}; goal >= 0.8)")
        if baseline:
            key = f"agent_at_{args.baseline_rev}"
            ratios = [now / old for now, old in zip(results["agent_now"], results[key], strict=True)]
            print(f"ratio agent_now / {key}: {medians['agent_now'] / medians[key]:.2f} "
                  f"(per round {', '.join(f'{x:.2f}' for x in ratios)})")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
