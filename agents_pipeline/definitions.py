"""The code location: every domain's Dagster face merged, with the shared resources.

Domains are imported as modules (not their ``defs`` names) because Dagster refuses a module
that holds more than one Definitions object at its top level. Code references ("View code" on
each asset's page) are added once, here, for every domain.
"""

import dagster as dg

from agents_pipeline.heartbeats import definitions as heartbeats_definitions
from agents_pipeline.help import definitions as help_definitions
from agents_pipeline.langsmith import definitions as langsmith_definitions
from agents_pipeline.migration import definitions as migration_definitions
from agents_pipeline.performance import definitions as performance_definitions
from agents_pipeline.platform import definitions as platform_definitions
from agents_pipeline.resources import postgres_resource
from agents_pipeline.retention import definitions as retention_definitions
from agents_pipeline.security import definitions as security_definitions
from agents_pipeline.ui import definitions as ui_definitions
from agents_pipeline.ui.code_references import with_code_references

defs = with_code_references(
    dg.Definitions.merge(
        platform_definitions.defs,
        heartbeats_definitions.defs,
        performance_definitions.defs,
        langsmith_definitions.defs,
        retention_definitions.defs,
        migration_definitions.defs,
        help_definitions.defs,
        security_definitions.defs,
        ui_definitions.defs,
        dg.Definitions(resources={"postgres": postgres_resource()}),
    )
)
