"""The code location: every domain's Dagster face merged, with the shared resources."""

import dagster as dg

from agents_pipeline.heartbeats.definitions import defs as heartbeats_defs
from agents_pipeline.help.definitions import defs as help_defs
from agents_pipeline.langsmith.definitions import defs as langsmith_defs
from agents_pipeline.migration.definitions import defs as migration_defs
from agents_pipeline.performance.definitions import defs as performance_defs
from agents_pipeline.platform.definitions import defs as platform_defs
from agents_pipeline.resources import postgres_resource
from agents_pipeline.retention.definitions import defs as retention_defs

defs = dg.Definitions.merge(
    platform_defs,
    heartbeats_defs,
    performance_defs,
    langsmith_defs,
    retention_defs,
    migration_defs,
    help_defs,
    dg.Definitions(resources={"postgres": postgres_resource()}),
)
