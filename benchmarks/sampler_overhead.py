"""The sampler's own cost: CPU time per sample for the host plus N agent processes.

Starts N sleeping Python processes, registers them as agents (by pid, and again by
command-line pattern), and measures with ``time.process_time`` around each piece:

* the host reading alone (psutil: /proc/stat, meminfo, diskstats, net/dev, statvfs);
* N agents by pid (one ``oneshot()`` each) and N agents by pattern (one process-table scan);
* the whole in-process sampling step the sensor runs: host + N agents read and derived;
* one complete ``sample_once`` (registry, state lock, insert, thresholds) in the client, and
  the PostgreSQL backend's CPU for the same transaction (from /proc/<backend pid>/stat).

Median and p95 over ``--repeats`` runs; the goal is <= 20 ms for host + 20 agents. A fresh
cluster in a temporary folder is used unless ``--url`` names a database.

    nice -n 10 python benchmarks/sampler_overhead.py --agents 20 --repeats 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg2
import sqlalchemy as sa

from agents_pipeline.core import migrations
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline.core.registry import register_agent
from agents_pipeline.performance.collect import Target, read_agents, read_host
from agents_pipeline.performance.derive import derive
from agents_pipeline.performance.sampler import sample_once

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()   # warm imports and caches once, as a long-lived code server would be
    out = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        out.append((time.process_time() - start) * 1000.0)
    return out


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"{statistics.median(ordered):.2f} | {p95:.2f}"


def backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--url", default=None, help="database to use (default: a throwaway cluster)")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    children = [subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)", f"bench-{tag}-{i}"])
                for i in range(args.agents)]
    cluster = None
    try:
        url = args.url
        if url is None:
            home = Path(tempfile.mkdtemp(prefix="ap-bench-perf-", dir="/tmp"))
            os.chmod(home, 0o755)
            if os.geteuid() == 0:
                shutil.chown(home, "postgres", "postgres")
            cluster = LocalCluster(home)
            cluster.up()
            url = cluster.url()
        conn = psycopg2.connect(**connect_kwargs(url))
        migrations.migrate(conn)
        conn.close()
        db = Database(url, maxconn=1)
        for i, child in enumerate(children):
            register_agent(db, f"bench-{tag}-{i}", pid=child.pid)
        db.close()
        time.sleep(0.5)

        by_pid = [Target(i, f"a{i}", pid=c.pid) for i, c in enumerate(children)]
        by_match = [Target(i, f"a{i}", match=f"bench-{tag}-{i}$") for i in range(args.agents)]
        processes = len(psutil.pids())
        now = datetime.now(UTC)
        host0, agents0 = read_host(), read_agents(by_pid)
        state0 = derive(host0, agents0, now, None, None).state

        def full() -> None:
            derive(read_host(), read_agents(by_pid), now + timedelta(seconds=60), now, state0)

        rows = [
            ("host only", cpu_ms(read_host, args.repeats)),
            (f"{args.agents} agents by pid", cpu_ms(lambda: read_agents(by_pid), args.repeats)),
            (f"{args.agents} agents by pattern (scan of {processes} processes)",
             cpu_ms(lambda: read_agents(by_match), args.repeats)),
            (f"host + {args.agents} agents by pid, read and derived (the sampling step)",
             cpu_ms(full, args.repeats)),
        ]

        engine = sa.create_engine(url, pool_size=1)
        client, stored = [], 0
        at = datetime.now(UTC)
        with engine.connect() as c:
            backend_pid = c.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            c.commit()
            with c.begin():     # the baseline sample
                sample_once(c, host="bench", now=at, min_gap_s=0)
            before = c.execute(sa.text("SELECT pg_total_relation_size('fleet.perf_samples') + coalesce(sum("
                                       "pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                                       "WHERE inhparent = 'fleet.perf_samples'::regclass")).scalar()
            c.commit()
            b0 = backend_cpu_s(backend_pid)
            for _ in range(args.repeats):
                at += timedelta(seconds=60)
                p0 = time.process_time()
                with c.begin():
                    result = sample_once(c, host="bench", now=at, min_gap_s=0)
                client.append((time.process_time() - p0) * 1000.0)
                stored = result.rows
            backend_ms = (backend_cpu_s(backend_pid) - b0) * 1000.0 / args.repeats
            after = c.execute(sa.text("SELECT pg_total_relation_size('fleet.perf_samples') + coalesce(sum("
                                      "pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                                      "WHERE inhparent = 'fleet.perf_samples'::regclass")).scalar()
            c.commit()
        engine.dispose()
        rows += [(f"sample_once, host + {args.agents} agents: client (Python, incl. SQL round trips)", client),
                 ("sample_once: PostgreSQL backend for the same transaction (mean over the runs)", [backend_ms])]

        print(f"Sampler CPU time per sample, {args.repeats} runs, {os.cpu_count()} cores, "
              f"{processes} processes on the host, psutil {psutil.__version__}\n")
        print("| what | median ms | p95 ms |\n|---|---:|---:|")
        for name, values in rows:
            print(f"| {name} | {summary(values)} |")
        per_sample = (after - before) / args.repeats
        print(f"\nrows stored per sample: {stored}; per day at one sample a minute: {stored * 1440:,} rows, "
              f"about {per_sample * 1440 / 1048576:,.0f} MiB with indexes ({per_sample / stored:.0f} bytes a row)")
    finally:
        for child in children:
            child.kill()
            child.wait()
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    main()
