"""One simulated agent as its own OS process: ``python -m agents_pipeline.demo.agent``.

It behaves the way real agents misbehave, through the same ``SharedState`` API a real agent
imports (and so with its own token, read from AGENTS_PIPELINE_AGENT_TOKEN): units of work
wrapped in start / success signals, LLM calls logged as conversations, CPU burnt on a core,
failures reported with a message, crashes (the process exits; the fleet supervisor brings it
back with a new pid) and hangs (alive, silent). Only core is imported, so it starts fast.

Each cycle it also claims up to two tasks its profile can do (the supervisor submits them as
demo-producer) and completes them, or fails them at its profile's fail rate (they are retried).
The crashy one claims tasks and crashes with them in hand: once the health evaluation marks it
down they go back to the queue, and an agent that can do them takes them (task_queue shows it).
Its heartbeats carry its lifecycle state, and it reports how many tasks it completed as the
custom metric ``custom:tasks_completed``.
"""

from __future__ import annotations

import argparse
import logging
import random
import signal
import sys
import time
import uuid
from types import FrameType

from agents_pipeline.core.errors import AgentsPipelineError, LeaseLostError
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.demo.profiles import MODELS, Profile, profile_named

log = logging.getLogger("agents_pipeline.demo_agent")
EXIT_CRASH = 3
"""Exit status of a simulated crash: the supervisor restarts only these and real errors."""
RUNNING = {"lifecycle": "running"}

_TASKS = (
    "summarise the overnight incident channel", "plan the weekly dependency upgrades",
    "triage new bug reports", "review pull request #{n}", "crawl the changelog of upstream {n}",
    "index the design documents", "draft release notes for v1.{n}",
)
_ERRORS = ("RateLimitError: 429 Too Many Requests", "TimeoutError: model did not answer in 30 s",
           "ValueError: tool call returned malformed JSON", "ConnectionError: upstream API reset")


def burn_cpu(seconds: float) -> int:
    """Busy work on one core for ``seconds`` of wall time; returns the iterations done."""
    deadline = time.monotonic() + seconds
    n = 0
    x = 1.0001
    while time.monotonic() < deadline:
        for _ in range(2000):
            x = (x * x) % 7.3 + 1.0001
        n += 1
    return n


def fake_llm_call(rng: random.Random, task: str) -> dict:
    """A plausible LLM call record: tokens, cost from list prices, latency, sometimes an error."""
    model, price_in, price_out = rng.choice(MODELS)
    prompt_tokens = rng.randint(200, 4000)
    failed = rng.random() < 0.04
    completion_tokens = 0 if failed else rng.randint(50, 1200)
    return {
        "model": model,
        "prompt": f"You are a background agent. Task: {task}. Use the tools you have.",
        "response": None if failed else f"Done: {task}. {completion_tokens} tokens of findings follow.",
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": round((prompt_tokens * price_in + completion_tokens * price_out) / 1e6, 6),
        "latency_ms": round(rng.lognormvariate(6.5, 0.6), 1),
        "error": rng.choice(_ERRORS) if failed else None,
    }


class DemoAgent:
    def __init__(self, state: SharedState, name: str, profile: Profile, period_s: float,
                 seed: int | None = None) -> None:
        self.state = state
        self.name = name
        self.profile = profile
        self.period_s = period_s
        self.rng = random.Random(seed)
        self.cycles = 0
        self.tasks_done = 0
        self._stopping = False
        lo_hi = profile.crash_after
        self.crash_at = self.rng.randint(*lo_hi) if lo_hi else None

    def stop(self, *_: object) -> None:
        self._stopping = True

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))

    def cycle(self) -> None:
        """One unit of work: start, busy CPU, an LLM call logged, then success or failure."""
        task = self.rng.choice(_TASKS).format(n=self.rng.randint(1, 999))
        self.state.start(message=task)
        burn_cpu(self.period_s * self.profile.cpu_share)
        call = fake_llm_call(self.rng, task)
        self.state.record_conversation(
            call.pop("prompt"), call.pop("response"), conversation_id=f"{self.name}:{uuid.uuid4().hex[:8]}",
            metadata={"demo": True, "task": task}, **call,
        )
        if call["error"] or self.rng.random() < self.profile.fail_rate:
            self.state.fail(message=call["error"] or self.rng.choice(_ERRORS))
        else:
            self.state.heartbeat(message=f"done: {task}", payload=RUNNING)
        self.work_tasks()

    def work_tasks(self) -> int:
        """Claims up to two tasks it can do and completes (or, at its fail rate, fails) each."""
        if not self.profile.capabilities:
            return 0
        done = 0
        for task in self.state.claim_tasks(self.profile.capabilities, 2, lease_s=max(30.0, 3 * self.period_s)):
            burn_cpu(self.rng.uniform(0.05, 0.3))
            try:
                if self.rng.random() < self.profile.fail_rate:
                    self.state.fail(task, self.rng.choice(_ERRORS))
                else:
                    self.state.complete(task, {"by": self.name, "attempt": task.attempt})
                    done += 1
            except LeaseLostError as exc:
                log.warning("%s: %s", self.name, exc)
        self.tasks_done += done
        self.state.report_metrics({"custom:tasks_completed": self.tasks_done})
        return done

    def crash_with_tasks(self) -> list[int]:
        """What the crashy agent does before it dies: takes tasks it will never finish."""
        held = self.state.claim_tasks(self.profile.capabilities, 3, lease_s=600) if self.profile.capabilities else []
        return [t.task_id for t in held]

    def run(self) -> int:
        self._say("starting")
        while not self._stopping:
            started = time.monotonic()
            try:
                self.cycle()
            except AgentsPipelineError as exc:  # the database is away: say so, keep going
                log.warning("%s: %s", self.name, exc)
            self.cycles += 1
            if self.crash_at is not None and self.cycles >= self.crash_at:
                try:
                    held = self.crash_with_tasks()
                except AgentsPipelineError:
                    held = []
                log.warning("%s: simulated crash after %d cycles, holding tasks %s", self.name, self.cycles, held)
                return EXIT_CRASH
            hang = self.profile.hang_after
            if hang and self.cycles % hang == 0:
                log.warning("%s: simulated hang for %.0f s", self.name, self.profile.hang_s)
                self._sleep(self.profile.hang_s)
                continue
            self._sleep(self.period_s - (time.monotonic() - started))
        self._say("stopped")
        return 0

    def _say(self, lifecycle: str) -> None:
        try:
            self.state.heartbeat(message=lifecycle, payload={"lifecycle": lifecycle})
        except AgentsPipelineError as exc:
            log.warning("%s: %s", self.name, exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True)
    parser.add_argument("--profile", required=True)
    parser.add_argument("--period", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.name} %(levelname)s %(message)s")
    state = SharedState(agent=args.name, maxconn=2)
    agent = DemoAgent(state, args.name, profile_named(args.profile), args.period, seed=args.seed)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        agent.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return agent.run()
    finally:
        state.close()


if __name__ == "__main__":
    sys.exit(main())
