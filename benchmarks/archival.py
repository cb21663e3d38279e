"""Archival under load: heartbeats over N days, archive the days past 30-day retention while 50
writers heartbeat continuously, and compare the writers' p99 latency with and without archival.

    .venv/bin/python benchmarks/archival.py [--rows 10000000] [--days 40] [--rate 500]

The writers are pgbench clients calling fleet.record_heartbeats (the SQL every agent runs), at a
fixed total rate so that latency, not throughput, is what changes; their latency counts from
each transaction's scheduled start (pgbench --rate), so a writer stalled behind a lock shows.
The archiver is the same code the Dagster asset runs (archiver.archive_day, one day at a time).
The cluster uses PostgreSQL's durable defaults. Prints the figures and a markdown table.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import psycopg2
from common import prepare_database

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, find_pg_bin, scratch_home
from agents_pipeline.retention import archiver
from agents_pipeline.retention.policy import utc_today

AGENTS = 50
RETENTION = 30
PGBENCH_SQL = """\\set n random(0, 49)
SELECT * FROM fleet.record_heartbeats(ARRAY['agent-' || :n]::text[], ARRAY[NULL]::text[], ARRAY['ok']::text[],
    ARRAY[now()]::timestamptz[], ARRAY[NULL]::text[], ARRAY[NULL]::jsonb[]);
"""


def sql(url: str, query: str, params=None):
    conn = psycopg2.connect(**connect_kwargs(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(query, params)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def load(url: str, rows: int, days: int) -> None:
    today = utc_today()
    first = today - timedelta(days=days)
    sql(url, "SELECT fleet.ensure_partitions('heartbeats', %s, %s)", (first, today + timedelta(days=7)))
    per_day = rows // days
    started = time.perf_counter()
    for i in range(days):
        day = first + timedelta(days=i)
        sql(url, """
            INSERT INTO fleet.heartbeats (agent_id, received_at, sent_at, kind, message, payload)
            SELECT g %% 100 + 1, %s::timestamptz + make_interval(secs => g * 86399.0 / %s),
                   %s::timestamptz + make_interval(secs => g * 86399.0 / %s - 0.2),
                   CASE WHEN g %% 500 = 0 THEN 'fail' ELSE 'ok' END,
                   CASE WHEN g %% 50 = 0 THEN 'processed batch ' || g END,
                   CASE WHEN g %% 10 = 0 THEN jsonb_build_object('queue', g %% 17, 'ms', g %% 997) END
            FROM generate_series(0, %s - 1) g""",
            (f"{day} 00:00:00+00", per_day, f"{day} 00:00:00+00", per_day, per_day))
        print(f"  loaded {day}: {per_day} rows ({time.perf_counter() - started:.0f} s)", flush=True)
    sql(url, "ANALYZE fleet.heartbeats")


def start_writers(cluster: LocalCluster, workdir: Path, seconds: int, rate: int) -> subprocess.Popen:
    script = workdir / "heartbeat.sql"
    script.write_text(PGBENCH_SQL)
    for old in glob.glob(str(workdir / "pgbench_log.*")):
        os.unlink(old)
    state = cluster.state()
    return subprocess.Popen(
        [str(find_pg_bin() / "pgbench"), "-n", "-c", str(AGENTS), "-j", "2", "-T", str(seconds), "-R", str(rate),
         "-l", "-f", str(script), "-h", str(cluster.sockdir), "-p", str(state["port"]), "-U", "postgres",
         "agents_pipeline"], cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def latencies_ms(workdir: Path, since: float, until: float) -> list[float]:
    """Per-transaction latency (from the scheduled start) of transactions ending in [since, until]."""
    out = []
    for path in glob.glob(str(workdir / "pgbench_log.*")):
        with open(path) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 6 or parts[2] == "skipped":
                    continue
                end = int(parts[4]) + int(parts[5]) / 1e6
                if since <= end <= until:
                    out.append(int(parts[2]) / 1000.0)
    return out


def phase_windows(steps: list[tuple[str, float]]) -> dict[str, list[tuple[float, float]]]:
    """Each archival step's (start, end) windows, from the checkpoints recorded in order."""
    phases: dict[str, list[tuple[float, float]]] = {}
    for (name, t0), (_, t1) in zip(steps, steps[1:], strict=False):
        if name != "end":
            phases.setdefault(name, []).append((t0, t1))
    return phases


def slow_by_phase(workdir: Path, steps: list[tuple[str, float]], threshold_ms: float) -> None:
    """Prints, per archival phase, its total length and the writes slower than ``threshold_ms``
    that ended in it: which step the writers feel."""
    phases: dict[str, list[float]] = {}
    for name, windows in phase_windows(steps).items():
        for t0, t1 in windows:
            latencies = latencies_ms(workdir, t0, t1)
            entry = phases.setdefault(name, [0.0, 0.0, 0.0])
            entry[0] += t1 - t0
            entry[1] += sum(1 for x in latencies if x > threshold_ms)
            entry[2] += len(latencies)
    print(f"writes slower than the idle p99 ({threshold_ms:.1f} ms), by the phase they ended in "
          "(start = freeze, after_freeze = export, after_export = Parquet write and fsync, after_write = verify, after_verify = detach, after_detach = drop):")
    for name, (seconds, slow, total) in phases.items():
        print(f"  {name:>13}: {seconds:6.2f} s, {int(slow)} slow of {int(total)} writes")


class WaitSampler(threading.Thread):
    """Samples what the writers' active backends wait on, every ``interval`` seconds (a
    diagnostic: which resource the archival contends for)."""

    def __init__(self, url: str, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.url, self.interval, self.samples, self.stop = url, interval, [], threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(**connect_kwargs(self.url))
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute("SELECT coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-'), count(*) "
                            "FROM pg_stat_activity WHERE application_name = 'pgbench' AND state = 'active' "
                            "GROUP BY 1")
                self.samples.append((time.time(), dict(cur.fetchall())))
                time.sleep(self.interval)
        conn.close()

    def report(self, steps: list[tuple[str, float]], idle: list[tuple[float, float]]) -> None:
        def tally(windows: list[tuple[float, float]]) -> tuple[int, dict[str, int]]:
            counts: dict[str, int] = {}
            n = 0
            for t, sample in self.samples:
                if any(a <= t < b for a, b in windows):
                    n += 1
                    for event, count in sample.items():
                        counts[event] = counts.get(event, 0) + count
            return n, counts
        phases = {"idle": idle, **phase_windows(steps)}
        print("writers' backends by wait event (mean active per sample), per phase:")
        for name, windows in phases.items():
            n, counts = tally(windows)
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:5]
            print(f"  {name:>13} ({n} samples): " + ", ".join(f"{e} {c / max(n, 1):.2f}" for e, c in top))


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98]


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
    args = parser.parse_args()

    home = scratch_home("ap-bench-archival-")
    cluster = LocalCluster(home, extra_settings=("max_wal_size='4GB'", "shared_buffers='512MB'", "timezone='UTC'"))
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
        waits = WaitSampler(url) if args.wait_events else None
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
            print(f"  {day}: {r.outcome} {r.rows} rows in {r.seconds:.2f} s, removed in {r.remove_ms:.1f} ms "
                  f"(drop {r.drop_ms:.1f} ms)", flush=True)
            results.append(r)
        time.sleep(2)
        writers.send_signal(signal.SIGTERM)  # SIGINT is ignored when started in the background
        writers.wait()
        before = [x for w in idle_windows for x in latencies_ms(workdir, *w)]
        slow_by_phase(workdir, steps, p99(before))
        if waits:
            waits.stop.set()
            waits.join()
            waits.report(steps, idle_windows)
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
            "archival_seconds": round(t1 - t0, 1),
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
