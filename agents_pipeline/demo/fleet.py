"""The demo fleet supervisor: registers simulated agents and keeps one OS process per agent.

Each agent is registered by pid, so the performance sampler finds its process; a crashed
agent is restarted after a pause with a new pid, which is written back to the registry.
Tokens are issued on every start (an agent's old token is replaced, as a redeploy would),
passed to the child in its environment, never on its command line.

The supervisor is also the fleet's producer: as ``demo-producer`` (an agent with a token of its
own) it submits a task every couple of seconds, of a kind some member can do, and the members
claim them by capability (``demo/agent.py``).
"""

from __future__ import annotations

import logging
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType

from agents_pipeline.core import settings, validation
from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import AgentsPipelineError, NotFoundError
from agents_pipeline.core.registry import new_token, token_hash
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.demo.agent import EXIT_CRASH
from agents_pipeline.demo.profiles import DEMO_AGENT_TYPE, PRODUCER, Profile, fleet

log = logging.getLogger(__name__)


def ensure_demo_agent(db: Database, name: str, profile: Profile, *, period_s: float, grace_s: float) -> str:
    """Registers the agent, or re-arms an existing registration (new token, same history);
    returns the token. One statement, so two supervisors racing on a name both succeed."""
    name = validation.name(name)
    token = new_token()

    def work(cur):
        cur.execute(
            """INSERT INTO fleet.agents (name, agent_type, period, grace, token_hash, token_issued_at, config,
                                        capabilities)
               VALUES (%(name)s, %(type)s, make_interval(secs => %(period)s), make_interval(secs => %(grace)s),
                       %(token_hash)s, now(), %(config)s::jsonb, %(caps)s::text[])
               ON CONFLICT (name) DO UPDATE
               SET token_hash = EXCLUDED.token_hash, token_issued_at = now(),
                   period = EXCLUDED.period, grace = EXCLUDED.grace, capabilities = EXCLUDED.capabilities,
                   config = fleet.agents.config || EXCLUDED.config, updated_at = now()""",
            {"name": name, "type": DEMO_AGENT_TYPE, "period": period_s, "grace": grace_s, "token_hash": token_hash(token),
             "config": validation.document({"demo": True, "profile": profile.name}, "agent config"),
             "caps": list(profile.capabilities)},
        )

    db.transaction(work)
    return token


def set_pid(db: Database, name: str, pid: int | None) -> None:
    """Points the sampler at the agent's current process (NULL: no process right now)."""

    def work(cur):
        cur.execute(
            """UPDATE fleet.agents SET process_pid = %s, process_pidfile = NULL, process_match = NULL,
                      updated_at = now() WHERE name = %s""", (pid, name))
        if cur.rowcount == 0:
            raise NotFoundError(f"unknown agent {name!r}")

    db.transaction(work)


@dataclass
class Member:
    name: str
    profile: Profile
    proc: subprocess.Popen | None = None
    restart_at: float | None = None
    starts: int = 0
    exits: list[int] = field(default_factory=list)


class Fleet:
    """Starts, watches and restarts the agents; ``stop()`` ends them all (SIGTERM, then SIGKILL)."""

    def __init__(self, url: str, n: int, *, period_s: float = 10.0, grace_s: float = 5.0,
                 restart_scale: float = 1.0, seed: int | None = None, produce_every_s: float = 2.0) -> None:
        self.url = url
        self.db = Database(url, maxconn=1, application_name="agents_pipeline:demo-fleet")
        self.period_s = period_s
        self.grace_s = grace_s
        self.restart_scale = restart_scale
        self.rng = random.Random(seed)
        self.members = [Member(name, profile) for name, profile in fleet(n)]
        self.kinds = sorted({c for m in self.members for c in m.profile.capabilities})
        self.produce_every_s = produce_every_s
        self.producer: SharedState | None = None
        self.submitted = 0
        self._next_task_at = 0.0
        self._next_beat_at = 0.0
        self._stopping = False

    def _produce(self, now: float) -> None:
        """One task when it is time, of a kind some member can do; the producer's heartbeat each period."""
        if self.producer is None:
            token = ensure_demo_agent(self.db, PRODUCER, Profile("producer", "producer"), period_s=self.period_s,
                                      grace_s=self.grace_s)
            self.producer = SharedState(self.url, agent=PRODUCER, token=token, maxconn=1)
        try:
            if now >= self._next_beat_at:
                self.producer.heartbeat(message=f"{self.submitted} tasks submitted", payload={"lifecycle": "running"})
                self._next_beat_at = now + self.period_s
            if self.kinds and now >= self._next_task_at:
                kind = self.rng.choice(self.kinds)
                self.producer.submit_task(kind, {"n": self.submitted, "what": f"{kind} item {self.submitted}"},
                                          capability=kind, max_attempts=4)
                self.submitted += 1
                self._next_task_at = now + self.produce_every_s * self.rng.uniform(0.5, 1.5)
        except AgentsPipelineError as exc:          # the database is away: the next poll tries again
            log.warning("demo-producer: %s", exc)

    def _spawn(self, member: Member) -> None:
        token = ensure_demo_agent(self.db, member.name, member.profile, period_s=self.period_s, grace_s=self.grace_s)
        env = {**os.environ, settings.DATABASE_URL: self.url, settings.AGENT_TOKEN: token}
        member.proc = subprocess.Popen(
            [sys.executable, "-m", "agents_pipeline.demo.agent", "--name", member.name,
             "--profile", member.profile.name, "--period", str(self.period_s),
             "--seed", str(self.rng.randrange(1 << 30))],
            env=env, stdin=subprocess.DEVNULL,
        )
        member.starts += 1
        member.restart_at = None
        set_pid(self.db, member.name, member.proc.pid)
        log.info("started %s (%s) as pid %d", member.name, member.profile.name, member.proc.pid)

    def start(self) -> None:
        for member in self.members:
            self._spawn(member)

    def poll(self) -> None:
        """Notices exits and restarts crashed agents once their pause is over; produces tasks."""
        now = time.monotonic()
        if not self._stopping:
            self._produce(now)
        for m in self.members:
            if m.proc is not None and (code := m.proc.poll()) is not None:
                m.exits.append(code)
                m.proc = None
                set_pid(self.db, m.name, None)
                if self._stopping:
                    continue
                lo, hi = m.profile.restart_delay_s
                delay = self.rng.uniform(lo, hi) * self.restart_scale
                m.restart_at = now + delay
                why = "simulated crash" if code == EXIT_CRASH else f"exit status {code}"
                log.info("%s stopped (%s); restarting in %.0f s", m.name, why, delay)
            elif m.proc is None and m.restart_at is not None and now >= m.restart_at and not self._stopping:
                self._spawn(m)

    def run(self, duration_s: float | None = None) -> None:
        """Until stopped or ``duration_s``; the agents are stopped however this ends (a database
        outage while restarting one must not leave the others orphaned)."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        try:
            self.start()
            while not self._stopping and (deadline is None or time.monotonic() < deadline):
                self.poll()
                time.sleep(0.5)
        finally:
            self.stop()

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        running = [m for m in self.members if m.proc is not None]
        for m in running:
            m.proc.terminate()
        deadline = time.monotonic() + timeout
        for m in running:
            try:
                m.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                m.proc.kill()
                m.proc.wait()
        try:
            self.poll()
        finally:
            if self.producer is not None:
                self.producer.close()
                self.producer = None
            self.db.close()


def run_fleet(url: str, n: int, *, period_s: float, grace_s: float, duration_s: float | None) -> int:
    """The CLI's entry: runs until SIGINT/SIGTERM (or ``duration_s``), then stops every agent."""
    demo = Fleet(url, n, period_s=period_s, grace_s=grace_s)

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        demo.request_stop()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        print(f"demo fleet: {n} agents, one process each (Ctrl-C stops them)", flush=True)
        for m in demo.members:
            print(f"  {m.name:<24} {m.profile.name}", flush=True)
        demo.run(duration_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
