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
import glob
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import psycopg2
from common import prepare_database

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, find_pg_bin, scratch_home
from agents_pipeline.retention import archiver, parquet_io
from agents_pipeline.retention.policy import utc_today

AGENTS = 50
RETENTION = 30
PGBENCH_SQL = """\\set n random(0, 49)
SELECT * FROM fleet.record_heartbeats(ARRAY['agent-' || :n]::text[], ARRAY[NULL]::bytea[], ARRAY['ok']::text[],
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


# /proc/diskstats fields after the device name: reads, sectors read, writes, sectors written,
# flushes completed, milliseconds spent flushing (the fields 1, 3, 5, 7, 15, 16).
_DISK_FIELDS = {"reads": 0, "read_mb": 2, "writes": 4, "written_mb": 6, "flushes": 14, "flush_ms": 15}
COUNTERS = ("wal_records", "wal_fpi", "wal_bytes", "wal_buffers_full", "wal_write", "wal_sync", "wal_write_time",
            "wal_sync_time", "buffers_checkpoint", "buffers_clean", "buffers_backend", "buffers_backend_fsync",
            "buffers_alloc")
COUNTERS_SQL = """SELECT wal_records, wal_fpi, wal_bytes, wal_buffers_full, wal_write, wal_sync, wal_write_time,
                         wal_sync_time, buffers_checkpoint, buffers_clean, buffers_backend, buffers_backend_fsync,
                         buffers_alloc
                  FROM pg_stat_wal, pg_stat_bgwriter"""


def disk_of(path: Path) -> tuple[int, int]:
    """The (major, minor) of the block device holding ``path``."""
    dev = os.stat(path).st_dev
    return os.major(dev), os.minor(dev)


def disk_counters(device: tuple[int, int]) -> dict[str, float]:
    """The I/O counters of ``device`` since boot (none when it is no block device)."""
    with open("/proc/diskstats") as fh:
        for line in fh:
            parts = line.split()
            if (int(parts[0]), int(parts[1])) == device:
                values = [int(x) for x in parts[3:]]
                out = {k: float(values[i]) for k, i in _DISK_FIELDS.items() if i < len(values)}
                for k in ("read_mb", "written_mb"):
                    out[k] = out[k] * 512 / 1e6
                return out
    return {}


class WaitSampler(threading.Thread):
    """Samples what the writers' active backends (and the archiver's) wait on, every
    ``interval`` seconds (a diagnostic: which resource the archival contends for); with
    ``io`` also the server's WAL and buffer-write counters and the disk's, to tell which
    process writes what in each phase."""

    def __init__(self, url: str, interval: float = 0.02, io: bool = False, device: tuple[int, int] = (0, 0)) -> None:
        super().__init__(daemon=True)
        self.url, self.interval, self.io, self.device = url, interval, io, device
        self.samples, self.counters, self.stop = [], [], threading.Event()

    def run(self) -> None:
        conn = psycopg2.connect(**connect_kwargs(self.url))
        conn.autocommit = True
        with conn.cursor() as cur:
            while not self.stop.is_set():
                cur.execute("SELECT CASE WHEN application_name = 'pgbench' THEN '' ELSE 'archiver ' END "
                            "|| coalesce(wait_event_type, 'CPU') || ':' || coalesce(wait_event, '-'), count(*) "
                            "FROM pg_stat_activity WHERE state = 'active' AND (application_name = 'pgbench' "
                            "OR application_name = 'agents_pipeline:retention') GROUP BY 1")
                now = time.time()
                self.samples.append((now, dict(cur.fetchall())))
                if self.io:
                    cur.execute(COUNTERS_SQL)
                    server = dict(zip(COUNTERS, (float(x) for x in cur.fetchone()), strict=True))
                    disk = {f"disk_{k}": v for k, v in disk_counters(self.device).items()}
                    self.counters.append((now, {**server, **disk}))
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
        print("backends by wait event (mean active per sample), per phase (writers, then the archiver's):")
        for name, windows in phases.items():
            n, counts = tally(windows)
            top = sorted(counts.items(), key=lambda kv: -kv[1])
            writers = [(e, c) for e, c in top if not e.startswith("archiver ")][:5]
            own = [(e, c) for e, c in top if e.startswith("archiver ")][:4]
            print(f"  {name:>13} ({n} samples): " + ", ".join(f"{e} {c / max(n, 1):.2f}" for e, c in writers))
            if own:
                print(f"  {'':>13}  " + ", ".join(f"{e} {c / max(n, 1):.2f}" for e, c in own))
        if self.counters:
            self.report_counters(phases)

    def report_counters(self, phases: dict[str, list[tuple[float, float]]]) -> None:
        """Per phase, each counter's increase per second (the sum of the increases between
        consecutive samples that fall in the phase's windows, over their total length).
        PostgreSQL's own counters reach the shared statistics up to a second late."""
        print("counters per second, per phase:")
        keys = list(self.counters[0][1])
        for name, windows in phases.items():
            total, seconds = dict.fromkeys(keys, 0.0), 0.0
            for (t0, c0), (t1, c1) in zip(self.counters, self.counters[1:], strict=False):
                if any(a <= (t0 + t1) / 2 < b for a, b in windows):
                    seconds += t1 - t0
                    for k in keys:
                        total[k] += c1.get(k, 0.0) - c0.get(k, 0.0)
            rate = {k: v / seconds for k, v in total.items()} if seconds else total
            print(f"  {name:>13} ({seconds:.1f} s): " + ", ".join(
                f"{k} {rate[k]:.3g}" for k in keys if k in rate))


def report_statements(url: str) -> None:
    """The archiver's statements by what they wrote: buffers dirtied and written (a backend
    writes a buffer itself when it evicts a dirty one), full-page images, WAL, temp files."""
    rows = sql(url, """
        SELECT sum(calls), round(sum(total_exec_time))::int, sum(shared_blks_hit), sum(shared_blks_read),
               sum(shared_blks_dirtied), sum(shared_blks_written), sum(local_blks_written), sum(temp_blks_written),
               sum(wal_records), sum(wal_fpi), sum(wal_bytes), round(sum(blk_read_time))::int,
               round(sum(blk_write_time))::int, q
        FROM (SELECT *, left(regexp_replace(regexp_replace(query, '\\s+', ' ', 'g'), '_p[0-9]{8}', '_pDAY', 'g'), 90) AS q
              FROM pg_stat_statements
              WHERE query NOT LIKE '%record_heartbeats%' AND query NOT LIKE '%pg_stat%') s
        GROUP BY q ORDER BY 2 DESC LIMIT 14""")
    print("archiver statements (pg_stat_statements): calls, ms, shared hit/read/dirtied/written, local written, "
          "temp written, wal records/fpi/bytes, read/write ms, query")
    for row in rows or []:
        print("  " + " | ".join(str(x) for x in row))


def record_chunks() -> list[tuple[float, float, float]]:
    """Records each paced chunk of the archiver as (start, end of work, end of pause)."""
    chunks: list[tuple[float, float, float]] = []
    original = parquet_io.Pacer.chunk.__wrapped__

    @contextmanager
    def chunk(self):
        started = time.time()
        with contextmanager(original)(self):
            yield
            worked = time.time()
        chunks.append((started, worked, time.time()))

    parquet_io.Pacer.chunk = chunk
    return chunks


def slow_by_chunk_part(workdir: Path, chunks: list[tuple[float, float, float]], threshold_ms: float) -> None:
    """The writes that ended while a chunk worked against those that ended in its pause."""
    for label, windows in (("working", [(a, b) for a, b, _ in chunks]), ("pausing", [(b, c) for _, b, c in chunks])):
        latencies = [x for w in windows for x in latencies_ms(workdir, *w)]
        seconds = sum(b - a for a, b in windows)
        if latencies:
            print(f"  chunks {label}: {seconds:6.2f} s, {sum(1 for x in latencies if x > threshold_ms)} slow of "
                  f"{len(latencies)} writes, p99 {p99(latencies) if len(latencies) > 1 else latencies[0]:.2f} ms")


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
