"""Binds the shared-state database (``postgres``) for every domain of the code location."""

import dagster as dg

from agents_pipeline.platform.resources import postgres_resource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"postgres": postgres_resource()})
