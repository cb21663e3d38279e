import dagster as dg

from agents_pipeline.platform.assets import schema_version_current, shared_state_schema

defs = dg.Definitions(assets=[shared_state_schema], asset_checks=[schema_version_current])
