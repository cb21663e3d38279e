"""Jobs: the 15-minute sync, and a backfill of a chosen time range launched from the Launchpad."""

from datetime import UTC, date, datetime, timedelta

import dagster as dg
from pydantic import Field

from agents_pipeline.console import Progress
from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.defs.langsmith import settings as settings_module
from agents_pipeline.defs.langsmith import stats, sync
from agents_pipeline.defs.langsmith.assets import (
    USAGE_PARTITIONS,
    forward_logs,
    langsmith_pushed_conversations,
    langsmith_runs,
    llm_usage_daily,
)
from agents_pipeline.defs.langsmith.resources import LangSmithResource
from agents_pipeline.defs.langsmith.settings import API_KEY
from agents_pipeline.platform.resources import PostgresResource

MAX_BACKFILL = timedelta(days=400)  # LangSmith's longest (extended) trace retention

# One process for both assets: the work is network-bound and a second process costs ~3 s CPU.
langsmith_sync_job = dg.define_asset_job(
    "langsmith_sync_job", selection=[langsmith_runs, langsmith_pushed_conversations],
    executor_def=dg.in_process_executor,
    description="Pull new and changed LangSmith runs; push unsent local conversations.",
    tags={"agents_pipeline/job": "langsmith_sync_job", "agents_pipeline/kind": "light"},
)


class LangSmithBackfillConfig(dg.Config):
    """The range to re-read. Times without a zone are UTC; a bare date means its midnight."""

    start: str = Field(description="first instant to read, ISO 8601, e.g. 2026-11-20 or 2026-11-20T06:00")
    end: str = Field(description="instant to stop before (exclusive), ISO 8601")
    projects: list[str] = Field(default_factory=list, description="subset of the configured projects; empty: all")


def parse_instant(text: str, name: str) -> datetime:
    try:
        return settings_module.parse_instant(text, f"backfill {name}")
    except ConfigurationError as exc:
        raise dg.Failure(description=str(exc)) from None


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = start.date(), (end - timedelta(microseconds=1)).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


@dg.op(description="Re-read LangSmith runs that started in [start, end), then refresh those days' usage.")
def backfill_langsmith_runs(context: dg.OpExecutionContext, config: LangSmithBackfillConfig,
                            postgres: PostgresResource, langsmith: LangSmithResource) -> dg.Output:
    start, end = parse_instant(config.start, "start"), parse_instant(config.end, "end")
    if not start < end:
        raise dg.Failure(description=f"backfill start {start.isoformat()} must be before end {end.isoformat()}")
    if end - start > MAX_BACKFILL:
        raise dg.Failure(description=f"backfill range of {(end - start).days} days exceeds {MAX_BACKFILL.days}")
    if not langsmith.configured:
        return dg.Output(None, metadata={"status": f"LangSmith is not configured ({API_KEY} is not set): nothing read"})
    settings = langsmith.sync_settings()
    unknown = sorted(set(config.projects) - set(settings.projects))
    if unknown:
        raise dg.Failure(description=f"projects {unknown} are not configured (configured: {list(settings.projects)})")
    if config.projects:
        settings = type(settings)(**{**settings.__dict__, "projects": tuple(config.projects)})
    redact = langsmith.redactor()
    # The same progress `langsmith sync --start/--end` draws on a terminal, as a log line every 10 s.
    with forward_logs(context), langsmith.session() as (client, _), \
            Progress("LangSmith backfill", unit="runs", log=context.log.info) as progress:
        results = sync.sync_all(postgres.engine, lambda: langsmith.source(client), settings,
                                redact=redact, window=(start, end), progress=progress)
    today = datetime.now(UTC).date()
    for day in _days(start, end):
        if day > today or day < USAGE_PARTITIONS.start.date():
            continue
        usage = stats.refresh_day(postgres.engine, day)
        context.log_event(dg.AssetMaterialization(
            asset_key=llm_usage_daily.key, partition=day.isoformat(),
            metadata=usage.ui_metadata()))
    metadata = {
        "runs_read": sum(r.runs_fetched for r in results), "runs_inserted": sum(r.inserted for r in results),
        "runs_updated": sum(r.updated for r in results), "projects_failed": sum(1 for r in results if not r.ok),
    }
    failed = [r for r in results if not r.ok]
    if failed:
        raise dg.Failure(description=redact("; ".join(r.error or r.project for r in failed)), metadata=metadata)
    return dg.Output(None, metadata=metadata)


@dg.job(description="Backfill: re-read LangSmith runs for a chosen time range (Launchpad config start/end).",
        executor_def=dg.in_process_executor,
        tags={"agents_pipeline/job": "langsmith_backfill_job", "agents_pipeline/kind": "bulk"})
def langsmith_backfill_job():
    backfill_langsmith_runs()
