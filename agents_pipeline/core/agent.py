"""The Agent helper: heartbeats from a background thread and wraps units of work in
start / success / fail signals, so an agent's author writes only the work itself."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from agents_pipeline.core.errors import AgentsPipelineError
from agents_pipeline.core.shared_state import SharedState

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, name: str, *, state: SharedState | None = None, token: str | None = None,
                 interval_s: float = 10.0) -> None:
        self.name = name
        self.state = state or SharedState(agent=name, token=token)
        self._owns_state = state is None
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start_heartbeats(self) -> None:
        """Heartbeats every ``interval_s`` until stop(); a failed heartbeat is logged, not raised,
        since the next one (after the library's own retries) may well succeed."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat:{self.name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.state.heartbeat(self.name)
            except AgentsPipelineError as exc:
                log.warning("heartbeat of %s failed: %s", self.name, exc)
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.interval_s + 5)
            self._thread = None
        if self._owns_state:
            self.state.close()

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

    def __enter__(self) -> Agent:
        self.start_heartbeats()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
