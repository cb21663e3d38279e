"""Reading the host and the agents' processes with psutil: cumulative counters and gauges only.

Nothing here computes a percentage or a rate: every sampling run starts with fresh psutil
state (a sensor tick, a CLI call), and psutil's first ``cpu_percent()`` is always 0.0. The
readings carry cumulative counters (CPU seconds, bytes, context switches) that ``derive``
turns into percentages and rates against the counters stored with the previous sample.

Cost matters (the monitor's own cost is part of the product): each process is read inside
one ``oneshot()``, the process table is scanned once per sample and only when some agent is
located by a command-line pattern, and the scan reads command lines only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

import psutil

# Read-only images (snap packages, CDs) are always 100 % full: not worth a disk alert.
_SKIP_FSTYPES = {"squashfs", "iso9660", "udf"}


@dataclass(frozen=True)
class Target:
    """A registered agent on this host and how to find its process."""

    agent_id: int
    name: str
    pid: int | None = None
    pidfile: str | None = None
    match: str | None = None


@dataclass(frozen=True)
class ProcessReading:
    pid: int
    create_time: float
    cpu_s: float                     # user + system, this process only (children are theirs)
    rss_bytes: int
    threads: int
    fds: int | None
    read_bytes: int | None           # storage I/O; None where the kernel denies /proc/pid/io
    write_bytes: int | None
    ctx_switches: int

    @property
    def key(self) -> str:
        """Identity across samples: a pid alone is reused by the kernel, pid + start time is not."""
        return f"{self.pid}:{self.create_time:.2f}"


@dataclass(frozen=True)
class AgentReading:
    target: Target
    processes: tuple[ProcessReading, ...]
    problem: str | None = None       # why nothing was found (pidfile missing, bad pattern, ...)

    @property
    def found(self) -> bool:
        return bool(self.processes)


@dataclass(frozen=True)
class HostReading:
    boot_time: float
    cpu: tuple[tuple[float, float], ...]          # per core (busy seconds, total seconds)
    load: tuple[float, float, float]
    cores: int
    memory_total: int
    memory_available: int
    memory_percent: float
    swap_total: int
    swap_used: int
    swap_percent: float
    disks: dict[str, tuple[float, int]] = field(default_factory=dict)  # mount: (used %, free bytes)
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    net_recv_bytes: int = 0
    net_sent_bytes: int = 0


def _busy_total(times) -> tuple[float, float]:
    # guest time is already counted in user/nice on Linux; counting it twice inflates the total
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    idle = times.idle + getattr(times, "iowait", 0.0)
    return total - idle, total


def read_host() -> HostReading:
    cores = tuple(_busy_total(t) for t in psutil.cpu_times(percpu=True))
    mem = psutil.virtual_memory()
    swap = psutil.swap_memory()
    disks: dict[str, tuple[float, int]] = {}
    seen_devices: set[str] = set()
    for part in psutil.disk_partitions(all=False):
        if part.fstype in _SKIP_FSTYPES or part.device in seen_devices:
            continue  # a bind mount of a device already counted reports the same numbers
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:  # unmounted between the listing and the statvfs, or no permission
            continue
        seen_devices.add(part.device)
        disks[part.mountpoint] = (usage.percent, usage.free)
    dio = psutil.disk_io_counters(perdisk=False)
    nics = psutil.net_io_counters(pernic=True)
    # loopback is the host talking to itself (the database included): not network I/O
    recv = sum(n.bytes_recv for name, n in nics.items() if name != "lo")
    sent = sum(n.bytes_sent for name, n in nics.items() if name != "lo")
    return HostReading(
        boot_time=psutil.boot_time(), cpu=cores, load=os.getloadavg(), cores=len(cores),
        memory_total=mem.total, memory_available=mem.available, memory_percent=mem.percent,
        swap_total=swap.total, swap_used=swap.used, swap_percent=swap.percent, disks=disks,
        disk_read_bytes=dio.read_bytes if dio else None, disk_write_bytes=dio.write_bytes if dio else None,
        net_recv_bytes=recv, net_sent_bytes=sent,
    )


def read_process(proc: psutil.Process) -> ProcessReading | None:
    """All attributes in one ``oneshot()``; None when the process is gone or a zombie."""
    try:
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            times = proc.cpu_times()
            try:
                io = proc.io_counters()
            except (psutil.AccessDenied, AttributeError):
                io = None
            try:
                fds = proc.num_fds()
            except psutil.AccessDenied:
                fds = None
            ctx = proc.num_ctx_switches()
            return ProcessReading(
                pid=proc.pid, create_time=proc.create_time(), cpu_s=times.user + times.system,
                rss_bytes=proc.memory_info().rss, threads=proc.num_threads(), fds=fds,
                read_bytes=io.read_bytes if io else None, write_bytes=io.write_bytes if io else None,
                ctx_switches=ctx.voluntary + ctx.involuntary,
            )
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def _from_pid(pid: int) -> tuple[ProcessReading, ...]:
    try:
        reading = read_process(psutil.Process(pid))
    except psutil.NoSuchProcess:
        return ()
    return (reading,) if reading else ()


def _from_pidfile(path: str) -> tuple[tuple[ProcessReading, ...], str | None]:
    try:
        raw = open(path, encoding="ascii", errors="replace").read(64)  # noqa: SIM115 - tiny file
        written = os.stat(path).st_mtime
    except OSError as exc:
        return (), f"pidfile {path} unreadable: {exc.strerror or exc}"
    text = raw.strip()
    if not text.isdigit() or int(text) <= 0:
        return (), f"pidfile {path} holds {text[:20]!r}, not a pid"
    found = _from_pid(int(text))
    # A stale pidfile whose pid the kernel gave to a newer process: that process started after
    # the file was written, so it is not the agent (a second of slack for coarse mtimes).
    if found and found[0].create_time > written + 1.0:
        return (), f"pidfile {path} is stale: pid {text} now belongs to a process started after it was written"
    return found, None if found else f"no process with pid {text} from {path}"


def _scan_command_lines(exclude: int) -> list[tuple[psutil.Process, str]]:
    table = []
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == exclude:
            continue
        cmdline = proc.info.get("cmdline")
        if cmdline:
            table.append((proc, " ".join(cmdline)))
    return table


def read_agents(targets: list[Target]) -> list[AgentReading]:
    """One reading per target; the process table is scanned at most once."""
    readings: list[AgentReading] = []
    table: list[tuple[psutil.Process, str]] | None = None
    for target in targets:
        if target.pid is not None:
            found = _from_pid(target.pid)
            readings.append(AgentReading(target, found, None if found else f"no process with pid {target.pid}"))
        elif target.pidfile:
            found, problem = _from_pidfile(target.pidfile)
            readings.append(AgentReading(target, found, problem))
        elif target.match:
            try:
                pattern = re.compile(target.match)
            except re.error as exc:
                readings.append(AgentReading(target, (), f"pattern {target.match!r} is not a valid regular expression: {exc}"))
                continue
            if table is None:
                # The sampler's own process is left out: a loose pattern ("python") would
                # otherwise count the monitor as the agent.
                table = _scan_command_lines(exclude=os.getpid())
            procs = [read_process(proc) for proc, cmdline in table if pattern.search(cmdline)]
            found = tuple(p for p in procs if p is not None)
            readings.append(AgentReading(target, found, None if found else f"no process matches {target.match!r}"))
    return readings
