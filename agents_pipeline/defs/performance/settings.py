"""The performance domain's settings from the environment (read when definitions load)."""

from __future__ import annotations

import os

from agents_pipeline.core.errors import ConfigurationError

INTERVAL_ENV = "AGENTS_PIPELINE_PERF_INTERVAL_S"
DEFAULT_INTERVAL_S = 60


def sample_interval_s() -> int:
    """Seconds between samples (the sensor's minimum interval): 60 by default, 5 to 3600.

    A sensor's interval is fixed when the code location loads, so a change takes a reload;
    a sensor that woke often to decide whether to sample would cost more than sampling.
    """
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = int(float(raw))
    except ValueError:
        raise ConfigurationError(f"{INTERVAL_ENV} must be a number of seconds, got {raw!r}") from None
    if not 5 <= value <= 3600:
        raise ConfigurationError(f"{INTERVAL_ENV} must be between 5 and 3600 seconds, got {raw!r}")
    return value
