"""Where the time-partitioned assets begin: ``AGENTS_PIPELINE_HISTORY_START``.

A partitions definition is fixed when the code location loads, so its first day comes from a
setting with a fixed default, never from a query: ``dg check defs`` and ``dg list defs`` run
without a database. The default is early enough for the legacy fleets this product replaces
(their SQLite files start in 2025) and late enough that the hourly rollups' partition bar
stays readable: every hour since the start is a partition the UI lists and counts as missing
until it is filled (2025-01-01 gives ~17,500 hours by the end of 2026; 2020-01-01 would give
~61,000, mostly empty). Older history: set the variable earlier and reload the code location.
The migration calls :func:`history_start_note` so its report says when imported data starts
before the partitions do.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime

from agents_pipeline.core.errors import ConfigurationError

HISTORY_START_ENV = "AGENTS_PIPELINE_HISTORY_START"
DEFAULT_HISTORY_START = date(2025, 1, 1)


def history_start() -> date:
    """The first day of every time-partitioned asset (rollups, daily LLM usage), in UTC."""
    raw = os.environ.get(HISTORY_START_ENV, "").strip()
    if not raw:
        return DEFAULT_HISTORY_START
    try:
        value = date.fromisoformat(raw)
    except ValueError:
        raise ConfigurationError(f"{HISTORY_START_ENV} must be a date like 2025-01-01, got {raw!r}") from None
    if not date(2000, 1, 1) <= value <= datetime.now(UTC).date():
        raise ConfigurationError(f"{HISTORY_START_ENV} must be between 2000-01-01 and today, got {raw!r}")
    return value


def history_start_note(earliest: datetime | date | None) -> str | None:
    """One line for a migration report when imported data begins before the partitions do, else None.

    ``earliest`` is the oldest imported timestamp (heartbeat, sample, conversation); naive
    values are taken as UTC, as the legacy files store them.
    """
    if earliest is None:
        return None
    if isinstance(earliest, datetime):
        day = (earliest if earliest.tzinfo else earliest.replace(tzinfo=UTC)).astimezone(UTC).date()
    else:
        day = earliest
    start = history_start()
    if day >= start:
        return None
    return (f"imported data starts on {day.isoformat()}, before the partitions' first day {start.isoformat()}: "
            f"the UI cannot roll up or show those {(start - day).days} days; set {HISTORY_START_ENV}="
            f"{day.isoformat()} and reload the code location to include them")
