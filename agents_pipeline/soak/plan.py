"""The fault schedule: what is broken when, fitted to the soak's length.

A warm-up comes first and a cool-down last, with no faults, so that every alert the faults
raised can resolve before the report is read. Between them the faults take turns; each gets
time to be detected and recovered from before the next one, so that the report can tell which
fault an alert belongs to. Agent kills never take down so many agents that the fleet-collapse
guard would merge their alerts: the guard gets its own fault (``collapse``), in soaks of ten
minutes or more.
"""

from __future__ import annotations

from dataclasses import dataclass

PERIOD_S = 5.0         # every soak agent's heartbeat period
GRACE_S = 10.0         # and grace: a PostgreSQL restart of a few seconds must not look like a death
EVALUATION_S = 10.0    # the health sensor's interval (heartbeats.sensors.EVALUATION_INTERVAL_S)
# A killed agent stays dead until its alert must have gone out: deadline plus two evaluations.
AGENT_DOWN_S = PERIOD_S + GRACE_S + 2 * EVALUATION_S + 5.0
BURST_S = 30.0
# Every server process stopped for longer than period + grace: no agent can be heard, and none
# may be alerted for it (the evaluator's ingest stall guard).
DATABASE_PAUSE_S = 25.0
COMPONENT_RESTART_S = 3.0   # a supervisor's restart delay for the daemon and the code server

KINDS = ("agent_kill", "postgres_restart", "code_server_kill", "daemon_kill", "burst", "collapse",
         "database_pause")
INFRASTRUCTURE = ("postgres_restart", "code_server_kill", "daemon_kill", "database_pause")   # blind the evaluator


@dataclass(frozen=True)
class Fault:
    at_s: float        # seconds after the soak started
    kind: str
    hold_s: float = 0.0   # how long the fault lasts before the harness restores what it broke


HOLD_S = {"agent_kill": AGENT_DOWN_S, "collapse": AGENT_DOWN_S + EVALUATION_S, "burst": BURST_S,
          "postgres_restart": 2.0, "code_server_kill": COMPONENT_RESTART_S, "daemon_kill": COMPONENT_RESTART_S,
          "database_pause": DATABASE_PAUSE_S}
# The long soak's rhythm: an agent kill between every two infrastructure faults.
CYCLE = ("agent_kill", "postgres_restart", "agent_kill", "code_server_kill", "agent_kill", "daemon_kill",
         "agent_kill", "burst", "agent_kill", "database_pause")
SLOT_S = AGENT_DOWN_S + 30.0   # a fault, its detection and its recovery, before the next one


def schedule(minutes: float) -> list[Fault]:
    """Faults for a soak of ``minutes``. Under ten minutes: one agent kill and a burst, then,
    once the killed agents are back, each infrastructure fault once, 12 s apart (no collapse
    and no database pause: they need a slot of their own).
    From ten minutes: the cycle above, one slot each, with the collapse fault in the middle."""
    total = minutes * 60.0
    warmup = max(20.0, 0.08 * total)
    cooldown = max(36.0, 0.10 * total)
    if minutes < 10:
        # The burst overlaps the kill (it cannot hide a death); the evaluator's own faults wait
        # until the killed agents are back, or a death could pass while nothing watches.
        after_kill = warmup + AGENT_DOWN_S + 5.0
        plan_ = [(warmup, "agent_kill"), (warmup + 10.0, "burst"), (after_kill, "postgres_restart"),
                 (after_kill + 12.0, "code_server_kill"), (after_kill + 24.0, "daemon_kill")]
        if plan_[-1][0] + 25.0 > total:
            raise ValueError("a soak needs at least 2 minutes")
        return [Fault(round(at, 1), kind, HOLD_S[kind]) for at, kind in plan_]
    slots = int((total - warmup - cooldown) // SLOT_S)
    if slots <= len(CYCLE):   # short: each kind once, agent kills first and last
        kinds = ["agent_kill", "postgres_restart", "code_server_kill", "collapse", "daemon_kill", "burst",
                 "database_pause", "agent_kill", "agent_kill"][:slots]
    else:
        kinds = [CYCLE[i % len(CYCLE)] for i in range(slots - 1)]
        kinds.insert(slots // 2, "collapse")
    return [Fault(round(warmup + i * SLOT_S, 1), kind, HOLD_S[kind]) for i, kind in enumerate(kinds)]
