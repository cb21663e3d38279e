"""Archival under load: heartbeats over N days, archive the days past 30-day retention while 50
writers heartbeat continuously, and compare the writers' p99 latency with and without archival.

    .venv/bin/python benchmarks/archival.py [--rows 10000000] [--days 40] [--rate 500] [--pace 25] [--io-stats]

The writers are pgbench clients calling fleet.record_heartbeats (the SQL every agent runs), at a
fixed total rate so that latency, not throughput, is what changes; their latency counts from
each transaction's scheduled start (pgbench --rate), so a writer stalled behind a lock shows.
The archiver is the same code the Dagster asset runs (archiver.archive_day, one day at a time).
The cluster uses PostgreSQL's durable defaults. Prints the figures and a markdown table, and
which archival step the writers' slow writes fall in; --io-stats adds per step the wait events,
WAL, buffer-write and disk counters, the paced chunks' work against their pauses, and the
archiver's statements (pg_stat_statements).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import psycopg2
from archival_diagnostics import WaitSampler, disk_of, record_chunks, report_statements
from archival_load import load, sql
from archival_writers import AGENTS, latencies_ms, p99, slow_by_chunk_part, slow_by_phase, start_writers
from common import prepare_database

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, scratch_home
from agents_pipeline.defs.retention import archiver
from agents_pipeline.defs.retention.policy import utc_today

RETENTION = 30


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=40)
    parser.add_argument("--rate", type=int, default=500, help="heartbeats per second over all 50 writers")
    parser.add_argument("--baseline-seconds", type=int, default=5,
                        help="first idle window; later ones last as long as the archival before them")
    parser.add_argument("--fresh", action="store_true",
                        help="archive the freshly loaded days without VACUUM (FREEZE) and CHECKPOINT first")
    parser.add_argument("--wait-events", action="store_true",
                        help="also sample the writers' wait events every 20 ms (adds a little load)")
    parser.add_argument("--io-stats", action="store_true",
                        help="with --wait-events: also WAL, buffer-write and disk counters per phase, and the "
                             "archiver's statements from pg_stat_statements (loaded into the cluster for this)")
    parser.add_argument("--pace", type=int,
                        help=f"sets {archiver.PACE_ENV} (percent of the time the export and verify work; "
                             f"default: the archiver's, {archiver.DEFAULT_PACE})")
    args = parser.parse_args()
    if args.pace is not None:
        os.environ[archiver.PACE_ENV] = str(args.pace)

    home = scratch_home("ap-bench-archival-")
    settings = ("max_wal_size='4GB'", "shared_buffers='512MB'", "timezone='UTC'")
    if args.io_stats:
        args.wait_events = True
        settings += ("shared_preload_libraries=pg_stat_statements", "track_io_timing=on", "track_wal_io_timing=on")
    cluster = LocalCluster(home, extra_settings=settings)
    workdir = Path(tempfile.mkdtemp(prefix="ap-bench-writers-"))
    archive_root = Path(tempfile.mkdtemp(prefix="ap-bench-archive-"))
    cluster.up()
    try:
        url = cluster.url()
        prepare_database(url, [f"agent-{i}" for i in range(AGENTS)])
        print(f"loading {args.rows:,} heartbeats over {args.days} days", flush=True)
        t_load = time.perf_counter()
        load(url, args.rows, args.days)
        print(f"loaded in {time.perf_counter() - t_load:.0f} s", flush=True)
        if not args.fresh:
            # Days past 30-day retention have long been vacuumed and frozen by autovacuum in
            # production; freshly loaded ones have not, and their first read (the export) would
            # set hint bits on every page while autovacuum freezes them in the background, both
            # writing through the same disk and WAL as the writers' commits. Measure the state
            # the archiver really meets: vacuumed, frozen, checkpointed.
            t_vac = time.perf_counter()
            conn = psycopg2.connect(**connect_kwargs(url))
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM (FREEZE, ANALYZE) fleet.heartbeats")
                cur.execute("CHECKPOINT")
            conn.close()
            print(f"vacuumed, frozen and checkpointed in {time.perf_counter() - t_vac:.0f} s", flush=True)

        # Writers run throughout; each day's archival window is preceded by an idle window of
        # the same length, so "with" and "without" see the same machine (shared, noisy cores).
        last = utc_today() - timedelta(days=RETENTION + 1)
        days = sorted(d for d in (utc_today() - timedelta(days=k) for k in range(1, args.days + 1)) if d <= last)
        writers = start_writers(cluster, workdir, 7200, args.rate)
        if args.io_stats:
            sql(url, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            sql(url, "SELECT pg_stat_statements_reset()")
        chunks = record_chunks() if args.io_stats else []
        waits = WaitSampler(url, io=args.io_stats, device=disk_of(cluster.datadir)) if args.wait_events else None
        if waits:
            waits.start()
        time.sleep(3)
        idle_windows, busy_windows, results = [], [], []
        steps: list[tuple[str, float]] = []    # (step, time) for attributing slow writes to a phase
        archiver.checkpoint = lambda name: steps.append((name, time.time()))
        gap = float(args.baseline_seconds)
        for day in days:
            i0 = time.time()
            time.sleep(gap)
            idle_windows.append((i0, time.time()))
            b0 = time.time()
            steps.append(("start", b0))
            r = archiver.archive_day(url, archive_root, "heartbeats", day, RETENTION)
            busy_windows.append((b0, time.time()))
            steps.append(("end", busy_windows[-1][1]))
            gap = max(2.0, busy_windows[-1][1] - b0)
            print(f"  {day}: {r.outcome} {r.rows} rows in {r.seconds:.2f} s (paused {r.paused_s:.2f} s), removed in "
                  f"{r.remove_ms:.1f} ms (drop {r.drop_ms:.1f} ms)", flush=True)
            results.append(r)
        time.sleep(2)
        writers.send_signal(signal.SIGTERM)  # SIGINT is ignored when started in the background
        writers.wait()
        before = [x for w in idle_windows for x in latencies_ms(workdir, *w)]
        slow_by_phase(workdir, steps, p99(before))
        slow_by_chunk_part(workdir, chunks, p99(before))
        for label, values in (("without", before), ("during", [x for w in busy_windows for x in latencies_ms(workdir, *w)])):
            q = statistics.quantiles(values, n=1000)
            print(f"  writers {label}: p50 {q[499]:.2f}, p90 {q[899]:.2f}, p95 {q[949]:.2f}, p98 {q[979]:.2f}, "
                  f"p99 {q[989]:.2f}, p99.5 {q[994]:.2f}, p99.9 {q[998]:.2f} ms")
        if waits:
            waits.stop.set()
            waits.join()
            waits.report(steps, idle_windows)
        if args.io_stats:
            report_statements(url)
        during = [x for w in busy_windows for x in latencies_ms(workdir, *w)]
        t0, t1 = 0.0, sum(b - a for a, b in busy_windows)
        n_days = len(days)
        rows = sum(r.rows for r in results)
        delete_day = utc_today() - timedelta(days=RETENTION)
        t_del = time.perf_counter()
        deleted = sql(url, "WITH d AS (DELETE FROM fleet.heartbeats WHERE received_at >= %s AND received_at < %s "
                           "RETURNING 1) SELECT count(*) FROM d",
                      (f"{delete_day} 00:00:00+00", f"{delete_day + timedelta(days=1)} 00:00:00+00"))[0][0]
        delete_ms = (time.perf_counter() - t_del) * 1000
        remove = [r.remove_ms for r in results]
        base_p99 = p99(before)
        figures = {
            "rows_loaded": args.rows, "days_archived": n_days, "rows_archived": rows,
            "pace_percent": archiver.pace().percent,
            "archival_seconds": round(t1 - t0, 1), "paused_seconds": round(sum(r.paused_s for r in results), 1),
            "rows_archived_per_s": round(rows / (t1 - t0)),
            "remove_day_ms_median": round(statistics.median(remove), 1), "remove_day_ms_max": round(max(remove), 1),
            "drop_ms_median": round(statistics.median(r.drop_ms for r in results), 1),
            "archive_bytes": sum(r.file_bytes for r in results),
            "writer_p99_ms_without": round(base_p99, 2), "writer_p99_ms_during": round(p99(during), 2),
            "p99_ratio": round(p99(during) / base_p99, 2),
            "writer_p50_ms_without": round(statistics.median(before), 2),
            "writer_p50_ms_during": round(statistics.median(during), 2),
            "writer_max_ms_without": round(max(before), 1), "writer_max_ms_during": round(max(during), 1),
            "writes_without": len(before), "writes_during": len(during),
            "delete_one_day_ms": round(delete_ms), "delete_one_day_rows": deleted,
        }
        print()
        for key, value in figures.items():
            print(f"{key}: {value}")
        print("\n| figure | value |\n|---|---:|")
        for key, value in figures.items():
            print(f"| {key} | {value} |")
    finally:
        cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(archive_root, ignore_errors=True)


if __name__ == "__main__":
    main()
