"""Heartbeat ingest: SharedState with 1 and 50 concurrent writers, the batch path, and pgbench
at 50 clients calling the same SQL, all measured in one run on one fresh cluster.

    .venv/bin/python benchmarks/heartbeat_ingest.py [--seconds 8] [--repeats 3]

Prints one line per measurement and the medians; the ratio is SharedState at 50 writers over
pgbench at 50 clients. The cluster uses PostgreSQL's durable defaults (fsync, synchronous
commit), as a production server would.
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

from common import prepare_database

from agents_pipeline.core.localdb import LocalCluster, find_pg_bin, scratch_home
from agents_pipeline.core.shared_state import SharedState

AGENTS = 50
PGBENCH_SQL = """\\set n random(0, 49)
SELECT * FROM fleet.record_heartbeats(ARRAY['agent-' || :n]::text[], ARRAY[NULL]::bytea[], ARRAY['ok']::text[],
    ARRAY[now()]::timestamptz[], ARRAY[NULL]::text[], ARRAY[NULL]::jsonb[]);
"""


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


def pgbench(cluster: LocalCluster, dbname: str, seconds: float, clients: int = 50) -> float:
    script = Path(tempfile.mkdtemp()) / "heartbeat.sql"
    script.write_text(PGBENCH_SQL)
    os.chmod(script.parent, 0o755)
    os.chmod(script, 0o644)
    exe = find_pg_bin() / "pgbench"
    state = cluster.state()
    proc = subprocess.run(
        [str(exe), "-n", "-c", str(clients), "-j", "2", "-T", str(int(seconds)), "-f", str(script),
         "-h", str(cluster.sockdir), "-p", str(state["port"]), "-U", "postgres", dbname],
        capture_output=True, text=True, check=True,
    )
    shutil.rmtree(script.parent, ignore_errors=True)
    match = re.search(r"tps = ([\d.]+)", proc.stdout)
    if not match:
        raise RuntimeError(f"pgbench printed no tps: {proc.stdout[-500:]}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    home = scratch_home("ap-bench-")
    cluster = LocalCluster(home)
    cluster.up()
    try:
        url = cluster.url()
        prepare_database(url, [f"agent-{i}" for i in range(AGENTS)])

        results: dict[str, list[float]] = {"sharedstate_1": [], "sharedstate_50": [], "batch": [], "pgbench_50": []}
        for r in range(args.repeats):
            results["sharedstate_1"].append(timed_threads(url, 1, args.seconds))
            results["sharedstate_50"].append(timed_threads(url, 50, args.seconds))
            results["batch"].append(timed_batches(url, args.seconds))
            results["pgbench_50"].append(pgbench(cluster, "agents_pipeline", args.seconds))
            print(f"round {r + 1}: " + ", ".join(f"{k}={v[-1]:,.0f}/s" for k, v in results.items()), flush=True)
        medians = {k: statistics.median(v) for k, v in results.items()}
        print(f"cores={os.cpu_count()} python={sys.version.split()[0]} seconds={args.seconds} repeats={args.repeats}")
        for key, value in medians.items():
            print(f"median {key}: {value:,.0f} heartbeats/s")
        print(f"ratio sharedstate_50 / pgbench_50: {medians['sharedstate_50'] / medians['pgbench_50']:.2f}")
        print(f"ratio sharedstate_1 / pgbench_50: {medians['sharedstate_1'] / medians['pgbench_50']:.2f}")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
