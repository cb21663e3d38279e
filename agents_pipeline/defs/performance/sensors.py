"""The sampler as a sensor: one sample per tick, reported as a materialization without a run."""

import dagster as dg
from sqlalchemy.exc import ProgrammingError

from agents_pipeline.defs.performance import report
from agents_pipeline.defs.performance.assets import SAMPLES_KEY
from agents_pipeline.defs.performance.resources import PerformanceSettingsResource
from agents_pipeline.defs.performance.sampler import sample_once
from agents_pipeline.defs.performance.settings import sample_interval_s
from agents_pipeline.platform.markdown import escape_md
from agents_pipeline.platform.resources import PostgresResource


@dg.sensor(
    name="performance_sampler_sensor",
    minimum_interval_seconds=sample_interval_s(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    # Names what it materializes, so performance_samples shows this sensor as its automation.
    asset_selection=[SAMPLES_KEY],
    description=(
        "Samples this host and its registered agents with psutil, stores the rows in fleet.perf_samples, "
        "applies the thresholds (opening and resolving alerts) and reports the performance_samples "
        "materialization with host CPU and memory to plot. Cadence: AGENTS_PIPELINE_PERF_INTERVAL_S "
        "(default 60 s)."
    ),
)
def performance_sampler_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource,
                               performance_settings: PerformanceSettingsResource):
    interval = performance_settings.sample_interval_s
    try:
        with postgres.begin() as conn:
            result = sample_once(conn, min_gap_s=min(5.0, interval / 2))
    except ProgrammingError as exc:
        if getattr(exc.orig, "pgcode", None) == "42P01":   # undefined_table
            raise dg.DagsterError("the performance tables are missing: run `agents-pipeline db migrate` "
                                  "(migration 0004_performance)") from None
        raise
    if result.skipped:
        return dg.SkipReason(result.skipped)
    for problem in result.threshold_problems:
        context.log.warning("threshold settings: %s", problem)
    for key in result.alerts.opened:
        context.log.info("alert opened: %s", key)
    return dg.SensorResult(asset_events=[dg.AssetMaterialization(
        asset_key=SAMPLES_KEY,
        description=f"sample of {escape_md(result.host)} at {result.sampled_at.isoformat()}",
        metadata={
            **report.sample_metadata(result),
            **report.top_agents_tables(result.agents),
        },
    )])
