"""The step retry policy of assets that call the network (LangSmith today).

Their clients already retry each request a few times (429, 5xx, dropped connections); a step
that still fails is retried whole by Dagster, after ``AGENTS_PIPELINE_STEP_RETRY_DELAY_S``
(default 60 s) doubling each time, with jitter so that code locations sharing an upstream do
not come back in step. The work is idempotent (versioned upserts, cursors in the same
transaction), so a retried step repeats at most one slice. Read when the definitions load.
"""

from __future__ import annotations

import os

import dagster as dg

from agents_pipeline.core.errors import ConfigurationError

DELAY_ENV = "AGENTS_PIPELINE_STEP_RETRY_DELAY_S"
MAX_RETRIES = 3


def step_retry_delay_s() -> float:
    raw = os.environ.get(DELAY_ENV, "").strip()
    if not raw:
        return 60.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{DELAY_ENV} must be a number of seconds, got {raw!r}") from None
    if not 0 <= value <= 3600:
        raise ConfigurationError(f"{DELAY_ENV} must be between 0 and 3600 seconds, got {raw!r}")
    return value


def network_retry_policy() -> dg.RetryPolicy:
    return dg.RetryPolicy(max_retries=MAX_RETRIES, delay=step_retry_delay_s(), backoff=dg.Backoff.EXPONENTIAL,
                          jitter=dg.Jitter.PLUS_MINUS)
