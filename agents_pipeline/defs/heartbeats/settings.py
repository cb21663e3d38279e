"""Tunables of health evaluation and alerting, from the environment (none of them secret)."""

from __future__ import annotations

import os
from dataclasses import dataclass

REMINDER_S = "AGENTS_PIPELINE_ALERT_REMINDER_S"
ERROR_SHARE = "AGENTS_PIPELINE_HEALTH_ERROR_SHARE"
COLLAPSE_MIN_FLEET = "AGENTS_PIPELINE_COLLAPSE_MIN_FLEET"
LOCK_HOLD_LIMIT_S = "AGENTS_PIPELINE_LOCK_HOLD_LIMIT_S"
THROTTLE_ALERT_S = "AGENTS_PIPELINE_THROTTLE_ALERT_S"
INGEST_STALL_MAX_S = "AGENTS_PIPELINE_INGEST_STALL_MAX_S"


def _number(env: str, default: float, *, low: float, high: float) -> float:
    raw = os.environ.get(env)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{env} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{env} must be between {low:g} and {high:g}, got {value:g}")
    return value


@dataclass(frozen=True)
class HealthSettings:
    reminder_s: float = 3600.0          # 0: no reminders while an agent stays down
    error_share: float = 0.25           # the health check is an error above this share of the fleet down
    collapse_min_fleet: int = 5         # the fleet-collapse guard applies from this fleet size
    evaluator_period_s: float = 10.0    # the evaluator's own agent: it heartbeats every evaluation
    evaluator_grace_s: float = 50.0
    lock_hold_s: float = 30.0           # an agent row held this long: alert, and end an agent holder
    throttle_alert_s: float = 300.0     # an agent refused by its rate limits this long: alert
    ingest_stall_max_s: float = 120.0   # while no agent is heard, silences wait this long (0: never)

    @classmethod
    def from_env(cls) -> HealthSettings:
        return cls(
            reminder_s=_number(REMINDER_S, 3600.0, low=0, high=7 * 86400),
            error_share=_number(ERROR_SHARE, 0.25, low=0, high=1),
            collapse_min_fleet=int(_number(COLLAPSE_MIN_FLEET, 5, low=2, high=1_000_000)),
            lock_hold_s=_number(LOCK_HOLD_LIMIT_S, 30.0, low=1, high=3600),
            throttle_alert_s=_number(THROTTLE_ALERT_S, 300.0, low=10, high=86400),
            ingest_stall_max_s=_number(INGEST_STALL_MAX_S, 120.0, low=0, high=3600),
        )
