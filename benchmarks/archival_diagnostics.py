"""The archival benchmark's diagnostics (--wait-events, --io-stats): what the writers' and the
archiver's backends wait on, the server's WAL and buffer-write counters and the disk's per
archival step, the paced chunks' timing, and the archiver's statements.

Split from archival.py because none of it is needed for the figures the target is judged by;
it answers "why" when a ratio moves.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import psycopg2
from archival_load import sql
from archival_writers import phase_windows

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.defs.retention import parquet_io

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
