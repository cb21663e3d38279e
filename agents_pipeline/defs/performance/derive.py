"""Turning two readings' cumulative counters into percentages and rates (pure, no I/O).

The previous sample's counters come from the database (``fleet.perf_sampler_state``), never
from psutil's in-process memory, so a sensor tick, a CLI call and a restarted code server
all compute the same figures. Counters are tracked per process (pid and start time), so an
agent whose process restarted or whose pattern now matches a new child is not charged with
a negative or inflated delta: a process started since the previous sample counts in full, a
process that was already running but was not tracked (newly registered, pattern changed)
makes that agent's rates wait one sample for a baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from agents_pipeline.defs.performance.collect import AgentReading, HostReading, ProcessReading

Row = tuple[int | None, str, float]   # (agent_id or None for the host, metric, value)

# Host counters stored as metrics beside the figures derived from them.
HOST_COUNTERS = ("cpu_busy_s", "cpu_total_s", "disk_read_bytes", "disk_write_bytes",
                 "net_recv_bytes", "net_sent_bytes")
AGENT_COUNTERS = ("cpu_time_s", "io_read_bytes", "io_write_bytes", "ctx_switches")
_PROC_FIELDS = ("cpu_s", "read_bytes", "write_bytes", "ctx_switches")


@dataclass(frozen=True)
class Derived:
    rows: list[Row]
    state: dict[str, Any]
    baseline: bool       # True when no usable previous sample: counters only, no rates


def _rate(now_value: float | None, prev_value: float | None, elapsed: float) -> float | None:
    if now_value is None or prev_value is None or now_value < prev_value:
        return None       # unknown, or a counter reset (reboot, wrapped device counter)
    return (now_value - prev_value) / elapsed


def _host_rows(host: HostReading, prev: dict[str, Any] | None, elapsed: float | None) -> list[Row]:
    busy = sum(b for b, _ in host.cpu)
    total = sum(t for _, t in host.cpu)
    rows: list[Row] = [
        (None, "cores", host.cores), (None, "load1", host.load[0]), (None, "load5", host.load[1]),
        (None, "load15", host.load[2]), (None, "memory_percent", host.memory_percent),
        (None, "memory_used_bytes", host.memory_total - host.memory_available),
        (None, "memory_available_bytes", host.memory_available),
        (None, "swap_percent", host.swap_percent), (None, "swap_used_bytes", host.swap_used),
        (None, "cpu_busy_s", busy), (None, "cpu_total_s", total),
        (None, "net_recv_bytes", host.net_recv_bytes), (None, "net_sent_bytes", host.net_sent_bytes),
    ]
    if host.disk_read_bytes is not None:
        rows += [(None, "disk_read_bytes", host.disk_read_bytes), (None, "disk_write_bytes", host.disk_write_bytes)]
    for mount, (percent, free) in sorted(host.disks.items()):
        rows += [(None, f"disk_used_percent:{mount}", percent), (None, f"disk_free_bytes:{mount}", free)]
    if prev is None or elapsed is None:
        return rows
    prev_cpu = prev.get("cpu") or []
    prev_busy, prev_total = sum(b for b, _ in prev_cpu), sum(t for _, t in prev_cpu)
    if len(prev_cpu) == len(host.cpu):   # a core brought on or off line breaks the CPU series
        if total > prev_total:
            rows.append((None, "cpu_percent", max(0.0, min(100.0, 100.0 * (busy - prev_busy) / (total - prev_total)))))
        for n, ((b, t), (pb, pt)) in enumerate(zip(host.cpu, prev_cpu, strict=True)):
            if t > pt:
                rows.append((None, f"cpu_percent:cpu{n}", max(0.0, min(100.0, 100.0 * (b - pb) / (t - pt)))))
    for metric, now_value, key, idx in (
        ("disk_read_bytes_per_s", host.disk_read_bytes, "disk", 0),
        ("disk_write_bytes_per_s", host.disk_write_bytes, "disk", 1),
        ("net_recv_bytes_per_s", host.net_recv_bytes, "net", 0),
        ("net_sent_bytes_per_s", host.net_sent_bytes, "net", 1),
    ):
        before = prev.get(key)
        rate = _rate(now_value, before[idx] if before else None, elapsed)
        if rate is not None:
            rows.append((None, metric, rate))
    return rows


def _proc_delta(procs: tuple[ProcessReading, ...], prev: dict[str, list] | None, since: float,
                field_index: int) -> float | None:
    """Sum over the agent's processes of what each counter grew by since the previous sample."""
    if prev is None:
        return None
    total = 0.0
    for proc in procs:
        value = getattr(proc, _PROC_FIELDS[field_index])
        if value is None:
            return None
        before = prev.get(proc.key)
        if before is not None:
            if before[field_index] is None or value < before[field_index]:
                return None
            total += value - before[field_index]
        elif proc.create_time >= since - 1.0:
            total += value          # started since the previous sample: all of it is new
        else:
            return None             # running before but not tracked: wait for a baseline
    return total


def _sum(procs: tuple[ProcessReading, ...], attr: str) -> float | None:
    values = [getattr(p, attr) for p in procs]
    return None if any(v is None for v in values) else float(sum(values))


def _agent_rows(reading: AgentReading, prev: dict[str, list] | None, since: float | None,
                elapsed: float | None) -> list[Row]:
    aid, procs = reading.target.agent_id, reading.processes
    rows: list[Row] = [(aid, "process_found", 1.0 if procs else 0.0), (aid, "process_count", float(len(procs)))]
    if not procs:
        return rows
    for metric, attr in (("rss_bytes", "rss_bytes"), ("threads", "threads"), ("fds", "fds"),
                         ("cpu_time_s", "cpu_s"), ("io_read_bytes", "read_bytes"),
                         ("io_write_bytes", "write_bytes"), ("ctx_switches", "ctx_switches")):
        value = _sum(procs, attr)
        if value is not None:
            rows.append((aid, metric, value))
    if since is None or elapsed is None:
        return rows
    for metric, idx, scale in (("cpu_percent", 0, 100.0), ("io_read_bytes_per_s", 1, 1.0),
                               ("io_write_bytes_per_s", 2, 1.0), ("ctx_switches_per_s", 3, 1.0)):
        delta = _proc_delta(procs, prev, since, idx)
        if delta is not None:
            rows.append((aid, metric, scale * delta / elapsed))
    return rows


def derive(host: HostReading, agents: list[AgentReading], now: datetime, prev_at: datetime | None,
           prev_state: dict[str, Any] | None, *, max_gap_s: float = 900.0) -> Derived:
    """Rows for one sample and the counters to keep for the next.

    Rates need a previous sample no older than ``max_gap_s``: after a longer gap (sampler
    stopped, host asleep) a rate would be an average over hours, and after a reboot every
    counter restarted, so such a sample only sets a new baseline.
    """
    elapsed = (now - prev_at).total_seconds() if prev_at is not None else None
    usable = prev_state if elapsed is not None and 0 < elapsed <= max_gap_s else None
    if usable is not None and usable.get("boot_time") != host.boot_time:
        usable = None    # rebooted: every counter started again from zero
    elapsed = elapsed if usable is not None else None
    since = prev_at.timestamp() if usable is not None and prev_at is not None else None
    rows = _host_rows(host, usable, elapsed)
    prev_procs = (usable or {}).get("procs", {})
    for reading in agents:
        rows += _agent_rows(reading, prev_procs.get(str(reading.target.agent_id)), since, elapsed)
    state = {
        "boot_time": host.boot_time,
        "cpu": [list(c) for c in host.cpu],
        "disk": [host.disk_read_bytes, host.disk_write_bytes] if host.disk_read_bytes is not None else None,
        "net": [host.net_recv_bytes, host.net_sent_bytes],
        "procs": {
            str(r.target.agent_id): {p.key: [p.cpu_s, p.read_bytes, p.write_bytes, p.ctx_switches]
                                     for p in r.processes}
            for r in agents
        },
    }
    return Derived(rows, state, usable is None)
