"""CPU and memory (proportional set size) of every stack process over time (psutil), summed
over each component's process tree: `dagster api grpc` and the daemon run their work in children."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psutil

HOST = "host"   # a sample of the whole machine: CPU % of all cores, and the 1-minute load x 1000 as "rss"


@dataclass(frozen=True)
class UsageSample:
    at: float
    component: str
    pid: int
    cpu_percent: float   # of one core, since the previous sample of the same process tree
    rss_bytes: int


class UsageSampler:
    """Samples ``pids()`` (component → pid) every ``interval_s`` in a thread."""

    def __init__(self, pids: Callable[[], dict[str, int | None]], interval_s: float = 5.0) -> None:
        self.pids = pids
        self.interval_s = interval_s
        self.samples: list[UsageSample] = []
        self._cpu: dict[tuple[str, int], tuple[float, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _tree(self, pid: int) -> tuple[float, int]:
        root = psutil.Process(pid)
        cpu = rss = 0.0
        for proc in [root, *root.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                # PSS: shared pages (PostgreSQL's shared buffers, forked workers) counted once
                # across the tree, not once per process as RSS would. Another user's process
                # (PostgreSQL's, when not root) only shows its RSS.
                try:
                    rss += proc.memory_full_info().pss
                except psutil.AccessDenied:
                    rss += proc.memory_info().rss
            except psutil.Error:
                continue
        return cpu, int(rss)

    def sample_once(self) -> None:
        now = time.time()
        # The machine itself: its CPU explains (or not) a host_high_cpu alert, its load average
        # how much else ran beside the soak.
        self.samples.append(UsageSample(now, HOST, 0, psutil.cpu_percent(), int(os.getloadavg()[0] * 1000)))
        for component, pid in self.pids().items():
            if pid is None:
                continue
            try:
                cpu, rss = self._tree(pid)
            except psutil.Error:
                continue
            previous = self._cpu.get((component, pid))
            self._cpu[(component, pid)] = (now, cpu)
            if previous is None:
                continue
            share = 100.0 * (cpu - previous[1]) / max(now - previous[0], 1e-6)
            self.samples.append(UsageSample(now, component, pid, round(share, 2), rss))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
