"""The Dagster face of the LangSmith sync: pulled runs, pushed conversations, daily usage."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import dagster as dg

from agents_pipeline.defs.langsmith import push, stats, sync
from agents_pipeline.defs.langsmith.resources import LangSmithResource
from agents_pipeline.defs.langsmith.settings import API_KEY, PROJECTS
from agents_pipeline.platform.history_start import history_start
from agents_pipeline.platform.markdown import escape_md
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline.platform.retry import network_retry_policy

GROUP = "langsmith"
OWNERS = ["team:agents-platform"]
USAGE_PARTITIONS = dg.DailyPartitionsDefinition(start_date=history_start().isoformat(), end_offset=1, timezone="UTC")
NETWORK_RETRY = network_retry_policy()   # see platform/retry.py

llm_conversations = dg.AssetSpec(
    "llm_conversations", group_name=GROUP, owners=OWNERS, kinds={"postgres"},
    description="LLM calls agents log through SharedState.record_conversation (fleet.llm_conversations).",
)


class _ToDagsterLog(logging.Handler):
    """Shows this domain's log lines (retries, per-project results) in the run's event log."""

    def __init__(self, context: dg.AssetExecutionContext | dg.OpExecutionContext) -> None:
        super().__init__(level=logging.INFO)
        self.context = context

    def emit(self, record: logging.LogRecord) -> None:
        log = self.context.log.warning if record.levelno >= logging.WARNING else self.context.log.info
        log(record.getMessage())


@contextmanager
def forward_logs(context: dg.AssetExecutionContext | dg.OpExecutionContext) -> Iterator[None]:
    handler = _ToDagsterLog(context)
    logger = logging.getLogger("agents_pipeline.defs.langsmith")
    level = logger.level
    logger.addHandler(handler)
    if not logger.isEnabledFor(logging.INFO):
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def not_configured(what: str) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={
        "status": f"LangSmith is not configured ({API_KEY} is not set): {what}",
        "configured": False,
    })


def _project_row(r: sync.ProjectResult) -> str:
    window = (f"{r.window_start:%Y-%m-%d %H:%M} | {r.window_end:%Y-%m-%d %H:%M}"
              if r.window_start and r.window_end else "- | -")
    # Error text quotes LangSmith's answers: escaped, like every string from outside.
    note = "no such project in LangSmith" if r.missing else escape_md(r.error, limit=200)
    return (f"| {escape_md(r.project)} | {'yes' if r.ok else 'NO'} | {window} | {r.runs_fetched} | {r.inserted} | "
            f"{r.updated} | {r.unchanged} | {r.pending_refetched} | {note} |")


def sync_metadata(results: list[sync.ProjectResult], retry_counts: dict[str, int]) -> dict:
    table = ["| project | ok | window start | window end | read | new | updated | unchanged | pending re-read | note |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|", *(_project_row(r) for r in results)]
    return {
        "configured": True,
        "projects": len(results),
        "projects_failed": sum(1 for r in results if not r.ok),
        "projects_missing": sum(1 for r in results if r.missing),
        "runs_read": sum(r.runs_fetched for r in results),
        "runs_inserted": sum(r.inserted for r in results),
        "runs_updated": sum(r.updated for r in results),
        "runs_unchanged": sum(r.unchanged for r in results),
        "pages": sum(r.pages for r in results),
        "pending_refetched": sum(r.pending_refetched for r in results),
        "stale_pending": sum(r.stale_pending for r in results),
        "retries_rate_limited": retry_counts.get("rate_limited", 0),
        "retries_server_error": retry_counts.get("server_error", 0),
        "retries_connection": retry_counts.get("connection_error", 0),
        "seconds": round(sum(r.seconds for r in results), 2),
        "by_project": dg.MetadataValue.md("\n".join(table)),
    }


@dg.asset(
    group_name=GROUP, owners=OWNERS, kinds={"langsmith", "postgres"},
    description="LLM runs of the configured LangSmith projects, pulled incrementally into fleet.llm_runs "
                "(versioned upsert by run id; cursor per project in fleet.sync_cursors).",
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=1), warn_window=timedelta(minutes=35)),
    retry_policy=NETWORK_RETRY,
    metadata={"dagster/table_name": "fleet.llm_runs"},
)
def langsmith_runs(context: dg.AssetExecutionContext, postgres: PostgresResource,
                   langsmith: LangSmithResource) -> dg.MaterializeResult:
    if not langsmith.configured:
        context.log.info("LangSmith sync skipped: %s is not set", API_KEY)
        return not_configured("no runs were pulled")
    settings = langsmith.sync_settings()
    if not settings.projects:
        return dg.MaterializeResult(metadata={"configured": True, "projects": 0,
                                              "status": f"no projects configured ({PROJECTS}): nothing pulled"})
    redact = langsmith.redactor()
    with forward_logs(context), langsmith.session() as (client, retry_stats):
        results = sync.sync_all(postgres.engine, lambda: langsmith.source(client), settings, redact=redact)
    metadata = sync_metadata(results, dict(retry_stats.counts))
    failed = [r for r in results if not r.ok]
    if failed:
        raise dg.Failure(description=redact("; ".join(r.error or r.project for r in failed)), metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name=GROUP, owners=OWNERS, kinds={"langsmith", "postgres"}, deps=[llm_conversations],
    description="Conversations logged locally, forwarded to LangSmith under their deterministic run ids "
                "(marked sent in fleet.llm_conversations only after LangSmith accepted them).",
    retry_policy=NETWORK_RETRY,
)
def langsmith_pushed_conversations(context: dg.AssetExecutionContext, postgres: PostgresResource,
                                   langsmith: LangSmithResource) -> dg.MaterializeResult:
    if not langsmith.configured:
        context.log.info("LangSmith push skipped: %s is not set", API_KEY)
        return not_configured("no conversations were pushed")
    redact = langsmith.redactor()
    errors: list[BaseException] = []
    with forward_logs(context), langsmith.session(ingest_errors=errors) as (client, retry_stats):
        result = push.push_conversations(postgres.engine, client, errors, langsmith.push_project, redact=redact)
    metadata = {
        "configured": True, "project": langsmith.push_project, "sent": result.sent,
        "already_in_langsmith": result.already_in_langsmith, "failed": result.failed,
        "unsent_remaining": result.unsent_remaining, "gave_up": result.gave_up, "batches": result.batches,
        "retries_rate_limited": retry_stats.counts.get("rate_limited", 0),
        "retries_server_error": retry_stats.counts.get("server_error", 0),
    }
    if result.failed:
        raise dg.Failure(description=redact(result.error or "LangSmith refused conversations"), metadata=metadata)
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    group_name=GROUP, owners=OWNERS, kinds={"postgres"}, partitions_def=USAGE_PARTITIONS,
    deps=[langsmith_runs, llm_conversations],
    # llm_usage_sensor refreshes today's partition within 10 minutes of a change; a day without
    # any is a stalled sensor or a silent fleet.
    freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26)),
    metadata={"dagster/column_schema": stats.COLUMN_SCHEMA, "dagster/table_name": "fleet.llm_usage_daily"},
    description="LLM usage per UTC day, agent and model (fleet.llm_usage_daily): runs, errors, tokens, cost, "
                "latency p50/p95; pulled runs and local conversations, each call counted once.",
)
def llm_usage_daily(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    day = USAGE_PARTITIONS.time_window_for_partition_key(context.partition_key).start.date()
    usage = stats.refresh_day(postgres.engine, day)
    return dg.MaterializeResult(metadata=usage.ui_metadata())
