"""The sampler's cadence as a resource, so the UI's *Resources* page shows it (read from
AGENTS_PIPELINE_PERF_INTERVAL_S when the definitions load; the sensor's interval is fixed then)."""

import dagster as dg
from pydantic import Field

from agents_pipeline.defs.performance.settings import INTERVAL_ENV, sample_interval_s


class PerformanceSettingsResource(dg.ConfigurableResource):
    """What performance_sampler_sensor samples with."""

    sample_interval_s: int = Field(default=60, description=f"{INTERVAL_ENV}: seconds between samples (5 to 3600)")


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"performance_settings": PerformanceSettingsResource(
        sample_interval_s=sample_interval_s())})
