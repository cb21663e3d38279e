"""Checks that turn the langsmith_runs asset red when the pull is falling behind."""

from datetime import timedelta

import dagster as dg
import sqlalchemy as sa

from agents_pipeline.defs.langsmith.assets import langsmith_runs
from agents_pipeline.defs.langsmith.resources import LangSmithResource
from agents_pipeline.defs.langsmith.settings import API_KEY
from agents_pipeline.defs.langsmith.store import CURSOR_PREFIX
from agents_pipeline.platform.resources import PostgresResource

MAX_LAG = timedelta(hours=1)


@dg.asset_check(asset=langsmith_runs, description="Every configured project was synced within the last hour.")
def langsmith_sync_current(postgres: PostgresResource, langsmith: LangSmithResource) -> dg.AssetCheckResult:
    if not langsmith.configured:
        return dg.AssetCheckResult(passed=True, description=f"LangSmith is not configured ({API_KEY} is not set)")
    projects = list(langsmith.sync_settings().projects)
    with postgres.begin() as conn:
        rows = conn.execute(sa.text("""
            SELECT p.name, extract(epoch FROM now() - (c.cursor->>'last_success_at')::timestamptz) AS lag_s
            FROM unnest(CAST(:names AS text[])) AS p(name)
            LEFT JOIN fleet.sync_cursors c ON c.name = :prefix || p.name"""),
            {"names": projects, "prefix": CURSOR_PREFIX}).all()
    behind = [r.name for r in rows if r.lag_s is None or r.lag_s > MAX_LAG.total_seconds()]
    worst = max((r.lag_s for r in rows if r.lag_s is not None), default=0.0)
    return dg.AssetCheckResult(
        passed=not behind, severity=dg.AssetCheckSeverity.WARN,
        metadata={"projects": len(projects), "projects_behind": len(behind), "max_lag_minutes": round(float(worst) / 60, 1)},
        description=None if not behind else f"not synced within {MAX_LAG}: {', '.join(behind)}",
    )
