"""The Agent helper: heartbeats from a background thread and wraps units of work in
start / success / fail signals, so an agent's author writes only the work itself.

``run(handler, capabilities)`` makes the agent a task worker: it claims tasks, runs the handler
on each, completes or fails them, and on SIGTERM (or SIGINT, or ``drain()``) drains: the task in
hand finishes, tasks claimed but not started go back to the queue without counting an attempt,
and it stops cleanly. Its heartbeats carry its lifecycle state (starting, running, draining,
stopped) in their payload, and renew the leases of the tasks it holds; the registry keeps the
latest (fleet.agents.lifecycle) and the UI shows it.

``metric(name, value)`` records a custom metric beside the sampled ones (``custom:<name>`` in
fleet.perf_samples), sent with the next heartbeat; ``custom:<name>`` threshold rules alert on it.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from agents_pipeline.core.errors import AgentsPipelineError, LeaseLostError, ValidationError
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.core.tasks import Task, label

log = logging.getLogger(__name__)
LIFECYCLE = ("starting", "running", "draining", "stopped")
CUSTOM_PREFIX = "custom:"      # a custom metric's name in perf_samples, apart from the sampled ones
MAX_PENDING_METRICS = 1000


class Agent:
    def __init__(self, name: str, *, state: SharedState | None = None, token: str | None = None,
                 interval_s: float = 10.0) -> None:
        self.name = name
        self.state = state or SharedState(agent=name, token=token)
        self._owns_state = state is None
        self.interval_s = interval_s
        self.lifecycle = "starting"
        self._stop = threading.Event()
        self._drain = threading.Event()
        self._thread: threading.Thread | None = None
        self._metrics: dict[str, float] = {}
        self._metrics_lock = threading.Lock()

    def start_heartbeats(self) -> None:
        """Heartbeats every ``interval_s`` until stop(); a failed heartbeat is logged, not raised,
        since the next one (after the library's own retries) may well succeed."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat:{self.name}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        try:
            self.state.heartbeat(self.name, payload={"lifecycle": self.lifecycle})
        except AgentsPipelineError as exc:
            log.warning("heartbeat of %s failed: %s", self.name, exc)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.flush_metrics()
            self._beat()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        """Stops the heartbeats; the last one says 'stopped', and pending metrics go with it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)
            self._thread = None
            self.flush_metrics()
            if self.lifecycle != "stopped":
                self.lifecycle = "stopped"
                self._beat()
        if self._owns_state:
            self.state.close()

    # -- custom metrics --------------------------------------------------------------------------
    def metric(self, name: str, value: float) -> None:
        """Records a custom metric (a gauge: the latest value per name wins) as ``custom:<name>``
        beside the sampled metrics. It is sent with the next heartbeat, so a hot loop costs no
        round trip and no rate-limit token per call; at once when no heartbeat thread runs.
        Threshold rules named ``custom:<name>`` alert on it (docs/performance.md)."""
        key = CUSTOM_PREFIX + label(name, "metric name")
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValidationError(f"metric {name!r} must be a finite number, got {value!r}")
        with self._metrics_lock:
            if key not in self._metrics and len(self._metrics) >= MAX_PENDING_METRICS:
                raise ValidationError(f"more than {MAX_PENDING_METRICS} custom metrics waiting to be sent")
            self._metrics[key] = float(value)
        if self._thread is None:
            self.flush_metrics()

    def flush_metrics(self) -> int:
        """Sends the metrics recorded since the last flush; returns how many were stored. On a
        failure they are kept (unless newer values came meanwhile) for the next flush."""
        with self._metrics_lock:
            pending, self._metrics = self._metrics, {}
        names = sorted(pending)
        stored = 0
        for i in range(0, len(names), 100):       # fleet.report_metrics takes 100 names a call
            chunk = {k: pending[k] for k in names[i:i + 100]}
            try:
                stored += self.state.report_metrics(chunk, agent=self.name)
            except AgentsPipelineError as exc:
                log.warning("custom metrics of %s not sent yet: %s", self.name, exc)
                with self._metrics_lock:
                    for k in names[i:]:
                        self._metrics.setdefault(k, pending[k])
                break
        return stored

    @contextmanager
    def unit_of_work(self, description: str | None = None) -> Iterator[None]:
        """start signal, then success (a heartbeat) or fail with the exception's text."""
        self.state.start(self.name, message=description)
        try:
            yield
        except BaseException as exc:
            self.state.fail(self.name, message=f"{type(exc).__name__}: {exc}"[:8000])
            raise
        self.state.heartbeat(self.name, message=description)

    # -- task worker -----------------------------------------------------------------------------
    def drain(self) -> None:
        """Asks run() to finish the task in hand, give back the rest and return (what SIGTERM does)."""
        self._drain.set()

    def run(self, handler: Callable[[Task], Any], capabilities: Iterable[str] | None = None, *,
            batch: int = 1, lease_s: float | None = None, idle_s: float = 1.0) -> int:
        """Claims tasks (``capabilities``; None: all this agent was granted) and runs ``handler`` on
        each: its return value completes the task, an exception fails it (retried with backoff).
        Returns, once drained, how many tasks it completed. Heartbeats run meanwhile; the lease
        (default three heartbeat intervals, at least 30 s) must outlast two of them, since a
        heartbeat renews a lease once half of it has passed."""
        lease = lease_s if lease_s is not None else max(3 * self.interval_s, 30.0)
        if lease <= 2 * self.interval_s:
            raise ValidationError(f"lease_s ({lease:g}) must be more than two heartbeat intervals ({self.interval_s:g} s)")
        caps = list(capabilities) if capabilities is not None else None
        restore = self._trap_signals()
        self.lifecycle = "running"
        self.start_heartbeats()
        self._beat()
        done = 0
        try:
            while not self._drain.is_set():
                tasks = self.state.claim_tasks(caps, batch, lease)
                if not tasks:
                    self._drain.wait(idle_s)
                    continue
                for i, task in enumerate(tasks):
                    if self._drain.is_set():
                        self._give_back(tasks[i:])
                        break
                    done += self._perform(handler, task)
        finally:
            self.lifecycle = "draining"
            restore()
        self.lifecycle = "stopped"
        self._beat()
        return done

    def _perform(self, handler: Callable[[Task], Any], task: Task) -> int:
        try:
            result = handler(task)
        except Exception as exc:                 # the handler's failure is the task's, not the agent's
            log.warning("task %s (%s) failed: %s", task.task_id, task.kind, exc)
            try:
                self.state.fail(task, exc)
            except LeaseLostError:
                pass
            return 0
        try:
            self.state.complete(task, result)
            return 1
        except LeaseLostError as exc:
            log.warning("%s", exc)
            return 0

    def _give_back(self, tasks: list[Task]) -> None:
        self.lifecycle = "draining"
        for task in tasks:
            try:
                self.state.release(task)
            except LeaseLostError:
                pass

    def _trap_signals(self) -> Callable[[], None]:
        """SIGTERM and SIGINT drain instead of killing, while run() runs in the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def on_signal(signum: int, frame: object) -> None:
            log.info("%s: signal %s, draining", self.name, signum)
            self.lifecycle = "draining"
            self._drain.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}

        def restore() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return restore

    def __enter__(self) -> Agent:
        self._beat()                  # 'starting', before the work begins
        if self.lifecycle == "starting":
            self.lifecycle = "running"
        self.start_heartbeats()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
