"""Runs a command the way the migration benchmark times it: wall-clock seconds, peak RSS of its
whole process tree (polled every 0.1 s), and a hang detector, since pgloader can stop using CPU
after some reader errors and never exit.

Split from sqlite_migration.py: it times this project's CLI, pgloader and the plain-COPY
baseline alike, and knows nothing of any of them.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil

Labeler = Callable[[list[str]], str]


def measured(args: list[str], env: dict | None = None, log: Path | None = None, timeout: float = 3600,
             idle_limit: float = 60.0, server: psutil.Process | None = None, label: Labeler | None = None) -> dict:
    """Runs a command, polling the RSS of its whole process tree; returns time, peak, output.
    A command that uses no CPU for ``idle_limit`` seconds (pgloader hangs after some reader
    errors) or runs past ``timeout`` is killed and reported as hung.

    With ``server`` (a PostgreSQL postmaster) and ``label`` (a process's command line -> a name),
    also where the CPU went: CPU-seconds per label over the command's tree and the server's
    processes (``cpu``), and the cores the whole machine kept busy in each second (``busy``)."""
    hung = [False]
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - closed below
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE,
                            text=True)
    peak = [0]
    idle_since = [time.monotonic()]
    accounting = _Accounting(server, label) if server is not None and label is not None else None

    def poll() -> None:
        cpu_seen = -1.0
        try:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                total, cpu = 0, 0.0
                tree = [root, *root.children(recursive=True)]
                for p in tree:
                    try:
                        total += p.memory_info().rss
                        times = p.cpu_times()
                        cpu += times.user + times.system
                    except psutil.Error:
                        pass
                if accounting is not None:
                    accounting.sample(tree)
                peak[0] = max(peak[0], total)
                if cpu > cpu_seen + 0.05:
                    cpu_seen, idle_since[0] = cpu, time.monotonic()
                elif time.monotonic() - idle_since[0] > idle_limit:
                    proc.kill()  # no CPU used for idle_limit seconds: hung (pgloader after a reader error)
                    hung[0] = True
                    return
                time.sleep(0.1)
        except psutil.Error:
            pass

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hung[0] = True
        proc.kill()
        stdout, stderr = proc.communicate()
    seconds = time.monotonic() - started
    if hung[0]:
        seconds = idle_since[0] - started  # up to its last sign of life
    watcher.join()
    if log:
        out.close()
        stdout = log.read_text(errors="replace")
    result = {"seconds": seconds, "peak_mb": peak[0] / 2**20, "returncode": proc.returncode, "stdout": stdout or "",
              "stderr": stderr or "", "hung": hung[0]}
    if accounting is not None:
        result["cpu"], result["busy"] = accounting.totals(), accounting.busy
    return result


class _Accounting:
    """CPU-seconds per labelled process, each process's last reading minus its reading before the
    command (the server's processes outlive it), and the whole machine's busy cores per second
    from /proc/stat. Polled every 0.1 s: a process that lives less misses at most that much."""

    def __init__(self, server: psutil.Process, label: Labeler) -> None:
        self.server, self.label = server, label
        self.base = {p.pid: _cpu(p) for p in server.children()}
        self.last: dict[int, tuple[str, float]] = {}
        self.busy: list[float] = []
        self._stat, self._at = _stat(), time.monotonic()

    def sample(self, tree: list[psutil.Process]) -> None:
        for p in [*tree, *self.server.children()]:
            try:
                name = self.last[p.pid][0] if p.pid in self.last else self.label(p.cmdline())
                self.last[p.pid] = (name, _cpu(p))
            except psutil.Error:
                pass
        if time.monotonic() - self._at >= 1.0:
            now = _stat()
            total, idle = now[0] - self._stat[0], now[1] - self._stat[1]
            self.busy.append(round((psutil.cpu_count() or 1) * (1 - idle / max(1, total)), 2))
            self._stat, self._at = now, time.monotonic()

    def totals(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, (name, cpu) in self.last.items():
            out[name] = out.get(name, 0.0) + cpu - self.base.get(pid, 0.0)
        return {k: round(v, 2) for k, v in sorted(out.items(), key=lambda kv: -kv[1]) if v >= 0.05}


def _cpu(p: psutil.Process) -> float:
    times = p.cpu_times()
    return times.user + times.system


def _stat() -> tuple[int, int]:
    """(all, idle + iowait) jiffies of the machine since boot."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    return sum(values), values[3] + values[4]
