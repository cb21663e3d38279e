"""The archival benchmark's writers and what they felt: 50 pgbench clients calling
fleet.record_heartbeats at a fixed rate, their per-transaction latencies read back from pgbench's
log, and the slow writes attributed to the archival step (or the paced chunk's work or pause)
they ended in.

Split from archival.py: the writers are the measuring instrument, the same whatever the
archiver does.
"""

from __future__ import annotations

import glob
import os
import statistics
import subprocess
from pathlib import Path

from agents_pipeline.core.localdb import LocalCluster, find_pg_bin

AGENTS = 50
PGBENCH_SQL = """\\set n random(0, 49)
SELECT * FROM fleet.record_heartbeats(ARRAY['agent-' || :n]::text[], ARRAY[NULL]::bytea[], ARRAY['ok']::text[],
    ARRAY[now()]::timestamptz[], ARRAY[NULL]::text[], ARRAY[NULL]::jsonb[]);
"""


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
