"""Many simulated agents in one process, for a fleet of hundreds or thousands (issue #21).

``demo-fleet`` runs each agent as its own OS process so the sampler finds real processes; a
thousand processes would not fit a laptop. The swarm keeps the same behaviours (profiles:
failures with a message, crashes and restarts, hangs) for many agents in one loop, writing
through one operator ``SharedState`` as a relay would: each due agent's heartbeat goes into one
batch statement (``heartbeat_many``), and each unit of work logs an LLM conversation and
reports the agent's CPU and memory (``report_metrics``, the path of agents on other hosts), so
every agent has a story. Agents are staggered over the period, so the load is even.
"""

from __future__ import annotations

import logging
import random
import signal
import time
from dataclasses import dataclass
from types import FrameType

from agents_pipeline.core.errors import AgentsPipelineError
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.demo.agent import fake_llm_call
from agents_pipeline.demo.fleet import ensure_demo_agent
from agents_pipeline.demo.profiles import Profile, fleet

log = logging.getLogger(__name__)
BATCH = 500


@dataclass
class SwarmAgent:
    name: str
    profile: Profile
    next_due: float
    cycles: int = 0
    crash_at: int | None = None
    silent_until: float = 0.0


class Swarm:
    """``n`` agents of the demo's fleet (skipping the first ``skip``, which run as processes)."""

    def __init__(self, url: str, n: int, *, skip: int = 0, period_s: float = 30.0, grace_s: float = 15.0,
                 seed: int | None = None) -> None:
        self.state = SharedState(url, maxconn=2)
        self.period_s = period_s
        self.rng = random.Random(seed)
        now = time.monotonic()
        self.agents = [SwarmAgent(name, profile, now + self.rng.uniform(0, period_s))
                       for name, profile in fleet(n)[skip:]]
        for a in self.agents:
            a.crash_at = self._crash_at(a.profile)
            ensure_demo_agent(self.state.db, a.name, a.profile, period_s=period_s, grace_s=grace_s)
        self._stopping = False

    def _crash_at(self, profile: Profile) -> int | None:
        return self.rng.randint(*profile.crash_after) if profile.crash_after else None

    def _cycle(self, a: SwarmAgent, now: float) -> dict:
        """One unit of work of ``a``: its heartbeat item; the conversation and metrics are sent here."""
        a.cycles += 1
        a.next_due = now + self.period_s
        call = fake_llm_call(self.rng, "routine swarm work")
        self.state.record_conversation(call.pop("prompt"), call.pop("response"), agent=a.name,
                                       metadata={"demo": True, "swarm": True}, **call)
        cpu = max(0.0, a.profile.cpu_share * 100 * self.rng.uniform(0.6, 1.4))
        self.state.report_metrics({"cpu_percent": round(cpu, 2),
                                   "rss_bytes": float(self.rng.randint(80, 400) * 1048576)}, agent=a.name)
        failed = call["error"] is not None or self.rng.random() < a.profile.fail_rate
        if a.crash_at is not None and a.cycles >= a.crash_at:      # silent until "restarted"
            lo, hi = a.profile.restart_delay_s
            a.silent_until = now + self.rng.uniform(lo, hi)
            a.cycles, a.crash_at = 0, self._crash_at(a.profile)
        elif a.profile.hang_after and a.cycles % a.profile.hang_after == 0:
            a.silent_until = now + a.profile.hang_s
        return {"agent": a.name, "kind": "fail" if failed else "ok",
                "message": call["error"] or ("unit of work failed" if failed else "done: routine swarm work")}

    def tick(self, now: float | None = None) -> int:
        """Runs the agents that are due; returns how many heartbeats were sent."""
        now = time.monotonic() if now is None else now
        items = []
        for a in self.agents:
            if a.next_due <= now and a.silent_until <= now and not self._stopping:
                try:
                    items.append(self._cycle(a, now))
                except AgentsPipelineError as exc:   # throttled or the database is away: next period
                    log.warning("%s: %s", a.name, exc)
                    a.next_due = now + self.period_s
        for i in range(0, len(items), BATCH):
            for item, outcome in zip(items[i:i + BATCH], self.state.heartbeat_many(items[i:i + BATCH]), strict=True):
                if isinstance(outcome, Exception):
                    log.warning("%s: heartbeat refused: %s", item["agent"], outcome)
        return len(items)

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def run(self, duration_s: float | None = None) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            while not self._stopping and (deadline is None or time.monotonic() < deadline):
                try:
                    self.tick()
                except AgentsPipelineError as exc:
                    log.warning("swarm: %s", exc)
                time.sleep(1.0)
        finally:
            self.state.close()


def run_swarm(url: str, n: int, *, skip: int, period_s: float, grace_s: float, duration_s: float | None) -> int:
    """The CLI's entry: runs until SIGINT/SIGTERM (or ``duration_s``)."""
    swarm = Swarm(url, n, skip=skip, period_s=period_s, grace_s=grace_s)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        swarm.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"demo swarm: {len(swarm.agents)} agents in this process, period {period_s:g} s "
              "(Ctrl-C stops them)", flush=True)
        swarm.run(duration_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
