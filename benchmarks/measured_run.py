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
from pathlib import Path

import psutil


def measured(args: list[str], env: dict | None = None, log: Path | None = None, timeout: float = 3600,
             idle_limit: float = 60.0) -> dict:
    """Runs a command, polling the RSS of its whole process tree; returns time, peak, output.
    A command that uses no CPU for ``idle_limit`` seconds (pgloader hangs after some reader
    errors) or runs past ``timeout`` is killed and reported as hung."""
    hung = [False]
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - closed below
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE,
                            text=True)
    peak = [0]
    idle_since = [time.monotonic()]

    def poll() -> None:
        cpu_seen = -1.0
        try:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                total, cpu = 0, 0.0
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                        times = p.cpu_times()
                        cpu += times.user + times.system
                    except psutil.Error:
                        pass
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
    return {"seconds": seconds, "peak_mb": peak[0] / 2**20, "returncode": proc.returncode, "stdout": stdout or "",
            "stderr": stderr or "", "hung": hung[0]}
