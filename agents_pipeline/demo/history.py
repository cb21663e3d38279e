"""The demo's history in the UI: the last 40 days' rollups and daily LLM usage, reported to Dagster.

``demo-seed`` writes 40 days of raw samples and conversations, but the UI plots materializations,
and the kickoff materializes only the latest partition: the rollup plots showed one point. This
computes every hour's rollup and every day's usage in PostgreSQL (the assets' own functions) and
reports each partition's materialization with its numbers to the webserver's
``/report_asset_materialization`` endpoint, so each plot shows the whole history within a
minute, with no run per partition (960 runs would take the daemon an hour here).
Idempotent: a re-run recomputes the same rows and reports the same numbers again.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa

from agents_pipeline.defs.langsmith.stats import refresh_day
from agents_pipeline.defs.performance.report import rollup_metadata
from agents_pipeline.defs.performance.rollups import RollupRefused, rollup_hour

log = logging.getLogger(__name__)
ROLLUPS = "performance_rollups"
USAGE = "llm_usage_daily"


@dataclass
class HistoryFill:
    hours_rolled: int = 0
    hours_refused: int = 0
    days_refreshed: int = 0
    reported: int = 0


def _plain(metadata: dict[str, object]) -> dict[str, object]:
    """Numbers and strings only: what the HTTP endpoint takes (tables stay with the real runs)."""
    return {k: v for k, v in metadata.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}


def report_materialization(ui_url: str, asset_key: str, partition: str, metadata: dict[str, object]) -> None:
    body = json.dumps({"partition": partition, "metadata": _plain(metadata),
                       "description": "demo history (agents-pipeline demo-history)"}).encode()
    request = urllib.request.Request(f"{ui_url}/report_asset_materialization/{asset_key}", data=body,
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()


def fill_history(database_url: str, ui_url: str | None, days: int = 40, *, now: datetime | None = None,
                 start: date | None = None) -> HistoryFill:
    """Rolls up every complete hour and refreshes every day of the last ``days`` days (not before
    ``start``, the partitions' first day), reporting each to ``ui_url`` when given."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    first = last_hour - timedelta(days=days)
    if start is not None:
        first = max(first, datetime(start.year, start.month, start.day, tzinfo=UTC))
    filled = HistoryFill()
    engine = sa.create_engine(database_url, pool_pre_ping=True)
    try:
        hour = first
        while hour <= last_hour:
            try:
                with engine.begin() as conn:
                    result = rollup_hour(conn, hour, now=now)
            except RollupRefused:
                filled.hours_refused += 1
            else:
                filled.hours_rolled += 1
                if ui_url:
                    report_materialization(ui_url, ROLLUPS, f"{hour:%Y-%m-%d-%H:%M}", rollup_metadata([result]))
                    filled.reported += 1
            hour += timedelta(hours=1)
        day = first.date()
        while day <= now.date():
            usage = refresh_day(engine, day)
            filled.days_refreshed += 1
            if ui_url:
                report_materialization(ui_url, USAGE, day.isoformat(), usage.metadata())
                filled.reported += 1
            day += timedelta(days=1)
    finally:
        engine.dispose()
    return filled
