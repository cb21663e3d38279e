"""A soak agent host: ``python -m agents_pipeline.soak.agent_host``, several agents in one process.

Each agent is a thread that heartbeats every period through the same paths real agents use:
``SharedState`` with its own token (the SQL path), or its ping URL over HTTP (the agent API).
Every heartbeat carries ``soak:<pid>:<seq>`` as its message, and the host appends one line per outcome
to its ledger: ``ack`` once the heartbeat is acknowledged (committed), ``refused`` on a rate-limit
refusal, ``error`` when it could not be delivered within the retry window. The harness compares
the acknowledged lines with the rows stored; a line written before a ``kill -9`` survives it (it
is in the kernel's page cache once ``write`` returns).

SIGUSR1 starts a burst: for ``burst_s`` every agent beats ten times faster (the trust issue's
rate limits still apply, so refusals are counted apart from losses). Only core is imported.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import FrameType

from agents_pipeline.core.errors import AgentsPipelineError, RateLimitedError
from agents_pipeline.core.shared_state import SharedState

SPEC_ENV = "AGENTS_PIPELINE_SOAK_AGENTS"   # JSON list of agents (tokens inside: never argv)
BURST_FACTOR = 10
HTTP_RETRY_WINDOW_S = 30.0


@dataclass(frozen=True)
class AgentSpec:
    name: str
    period_s: float
    token: str | None = None       # the SQL path: the agent's own login, its token the password
    url: str | None = None
    ping_url: str | None = None    # the HTTP path


class Ledger:
    """Append-only outcome lines, shared by the host's threads."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.pid = os.getpid()
        self._lock = threading.Lock()

    def write(self, outcome: str, agent: str, seq: int, detail: str = "") -> None:
        line = f"{outcome}\t{agent}\tsoak:{self.pid}:{seq}\t{time.time():.3f}\t{detail[:200]}\n".encode()
        with self._lock:
            os.write(self._fd, line)


class Host:
    def __init__(self, specs: list[AgentSpec], ledger: Ledger, burst_s: float) -> None:
        self.specs = specs
        self.ledger = ledger
        self.burst_s = burst_s
        self.pid = os.getpid()
        self.burst_until = 0.0
        self.stop = threading.Event()

    def period(self, spec: AgentSpec) -> float:
        return spec.period_s / BURST_FACTOR if time.monotonic() < self.burst_until else spec.period_s

    def run_sql(self, spec: AgentSpec) -> None:
        with SharedState(spec.url, agent=spec.name, token=spec.token, maxconn=1) as state:
            seq = 0
            while not self.stop.is_set():
                seq += 1
                try:
                    state.heartbeat(message=f"soak:{self.pid}:{seq}")
                    self.ledger.write("ack", spec.name, seq)
                except RateLimitedError as exc:
                    self.ledger.write("refused", spec.name, seq, str(exc))
                except AgentsPipelineError as exc:
                    self.ledger.write("error", spec.name, seq, type(exc).__name__)
                self.stop.wait(self.period(spec))

    def _ping(self, spec: AgentSpec, seq: int) -> tuple[str, str]:
        """One ping, retried on 503 and connection errors for the retry window (as `curl --retry`
        would); a 429 is a refusal, not retried."""
        deadline = time.monotonic() + HTTP_RETRY_WINDOW_S
        delay = 0.5
        while True:
            request = urllib.request.Request(spec.ping_url, data=f"soak:{self.pid}:{seq}".encode(), method="POST")
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    response.read()
                return "ack", ""
            except urllib.error.HTTPError as exc:
                if exc.code == 429:
                    return "refused", "429"
                if exc.code != 503:
                    return "error", f"HTTP {exc.code}"
                why = "503"
            except (urllib.error.URLError, OSError) as exc:
                why = type(exc).__name__
            if time.monotonic() + delay > deadline or self.stop.is_set():
                return "error", why
            time.sleep(delay)
            delay = min(delay * 2, 4.0)

    def run_http(self, spec: AgentSpec) -> None:
        seq = 0
        while not self.stop.is_set():
            seq += 1
            outcome, detail = self._ping(spec, seq)
            self.ledger.write(outcome, spec.name, seq, detail)
            self.stop.wait(self.period(spec))

    def start_burst(self, _signum: int, _frame: FrameType | None) -> None:
        self.burst_until = time.monotonic() + self.burst_s

    def run(self) -> None:
        threads = [threading.Thread(target=self.run_http if s.ping_url else self.run_sql, args=(s,), daemon=True)
                   for s in self.specs]
        for thread in threads:
            thread.start()
            time.sleep(min(0.2, self.specs[0].period_s / max(1, len(self.specs))))  # spread the phases
        signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        while not self.stop.is_set():
            self.stop.wait(1.0)
        for thread in threads:
            thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="agents_pipeline.soak.agent_host")
    parser.add_argument("--ledger", required=True)
    parser.add_argument("--burst-seconds", type=float, default=60.0)
    args = parser.parse_args(argv)
    raw = json.loads(os.environ.pop(SPEC_ENV))
    specs = [AgentSpec(**item) for item in raw]
    host = Host(specs, Ledger(args.ledger), args.burst_seconds)
    signal.signal(signal.SIGUSR1, host.start_burst)
    host.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
