"""``agents-pipeline soak``: the whole stack for N minutes with faults injected on a schedule,
then a report of what was lost, what was alerted and what it cost.

The harness plays the process supervisor: what it kills, it starts again after the fault's
hold time. Times are wall-clock (``time.time()``), the same clock PostgreSQL stamps on this
machine, so ledger lines, notices and rows can be compared.
"""

from __future__ import annotations

import logging
import math
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from agents_pipeline.soak import plan
from agents_pipeline.soak.stack import Stack
from agents_pipeline.soak.usage import UsageSampler

log = logging.getLogger(__name__)


@dataclass
class Injected:
    kind: str
    at: float                  # wall clock
    restored_at: float | None = None
    hosts: list[str] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)


@dataclass
class SoakRun:
    minutes: float
    agents: int
    out: Path
    started_at: float = 0.0
    ended_at: float = 0.0
    startup_s: float = 0.0
    injected: list[Injected] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)   # fault steps that failed


class Harness:
    def __init__(self, out: Path, minutes: float, agents: int, seed: int = 7) -> None:
        self.run = SoakRun(minutes, agents, out)
        self.stack = Stack(out, agents)
        self.rng = random.Random(seed)
        self.sampler = UsageSampler(self.stack.pids, interval_s=5.0 if minutes >= 10 else 2.0)

    # -- faults ---------------------------------------------------------------------------------
    def _live_hosts(self) -> list:
        return [h for h in self.stack.hosts if h.pid is not None]

    def inject(self, fault: plan.Fault) -> Injected:
        done = Injected(fault.kind, time.time())
        if fault.kind in ("agent_kill", "collapse"):
            live = self._live_hosts()
            count = 1 if fault.kind == "agent_kill" else math.ceil(0.6 * len(self.stack.hosts))
            for host in self.rng.sample(live, min(count, len(live))):
                host.kill9()
                done.hosts.append(host.name)
                done.agents += self.stack.host_agents[host.name]
        elif fault.kind == "postgres_restart":
            self.stack.cluster.down()
        elif fault.kind == "database_pause":
            self.stack.pause_database()
        elif fault.kind in ("code_server_kill", "daemon_kill"):
            self.stack.services[fault.kind.removesuffix("_kill")].kill9()
        elif fault.kind == "burst":
            for host in self._live_hosts():
                host.signal(signal.SIGUSR1)
        log.info("fault %s at +%.0f s %s", fault.kind, done.at - self.run.started_at, " ".join(done.hosts))
        return done

    def restore(self, done: Injected) -> None:
        if done.kind in ("agent_kill", "collapse"):
            for host in self.stack.hosts:
                if host.name in done.hosts:
                    host.start()
        elif done.kind == "postgres_restart":
            self.stack.cluster.up()
        elif done.kind == "database_pause":
            self.stack.resume_database()
        elif done.kind in ("code_server_kill", "daemon_kill"):
            self.stack.services[done.kind.removesuffix("_kill")].start()
        done.restored_at = time.time()

    # -- the run --------------------------------------------------------------------------------
    def execute(self) -> SoakRun:
        """Starts everything, runs the schedule, stops everything; the database is left running
        for the report (``close`` removes it)."""
        self.run.out.mkdir(parents=True, exist_ok=True)
        faults = plan.schedule(self.run.minutes)
        self.stack.start_database()
        self.stack.start_services()
        self.stack.start_agents()
        self.run.startup_s = self.stack.wait_until_up()
        self.sampler.start()
        self.run.started_at = time.time()
        pending: list[tuple[float, plan.Fault | Injected]] = [(self.run.started_at + f.at_s, f) for f in faults]
        end = self.run.started_at + self.run.minutes * 60.0
        while time.time() < end:
            pending.sort(key=lambda item: item[0])
            due = [item for item in pending if item[0] <= time.time()]
            for item in due:
                pending.remove(item)
                what = item[1]
                try:
                    if isinstance(what, plan.Fault):
                        done = self.inject(what)
                        self.run.injected.append(done)
                        if what.kind != "burst":
                            pending.append((done.at + what.hold_s, done))
                    else:
                        self.restore(what)
                except Exception as exc:   # a supervisor keeps going; the report shows the gap
                    log.exception("fault step failed: %s", what)
                    self.run.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            time.sleep(0.2)
        for _, what in pending:     # a fault still held when time ran out is restored now
            if isinstance(what, Injected):
                self.restore(what)
        self.sampler.stop()
        self.run.ended_at = time.time()
        self.stack.stop_agents()
        return self.run

    def close(self) -> None:
        self.sampler.stop()
        self.stack.stop()
