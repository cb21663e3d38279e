"""Keeps today's (and yesterday's) llm_usage_daily partition current without launching runs.

Computing a day is one aggregate query over indexed ranges, so the sensor does it in the
daemon and reports the materialization itself (a run would cost ~3 s of CPU to start). It
writes and reports only when the figures changed since its last report (digest in the cursor).
Yesterday stays in view because runs keep arriving (late children, pending runs finishing).
"""

import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from agents_pipeline.defs.langsmith import stats
from agents_pipeline.defs.langsmith.assets import USAGE_PARTITIONS, llm_usage_daily
from agents_pipeline.platform.resources import PostgresResource


@dg.sensor(
    name="llm_usage_sensor", minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[llm_usage_daily],
    description="Refreshes today's and yesterday's LLM usage partitions when their figures change.",
)
def llm_usage_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    today = datetime.now(UTC).date()
    events = []
    for day in (today - timedelta(days=1), today):
        key = day.isoformat()
        if day < USAGE_PARTITIONS.start.date():
            continue
        with postgres.begin() as conn:
            usage = stats.compute_day(conn, day)
            if seen.get(key) == usage.digest:
                continue
            stats.write_day(conn, usage)
        seen[key] = usage.digest
        events.append(dg.AssetMaterialization(
            asset_key=llm_usage_daily.key, partition=key,
            metadata=usage.ui_metadata()))
    keep = {(today - timedelta(days=i)).isoformat() for i in range(2)}
    return dg.SensorResult(asset_events=events, cursor=json.dumps({k: v for k, v in seen.items() if k in keep}))
