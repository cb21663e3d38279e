"""The migration domain's Dagster face: the Launchpad job and the asset its runs report on."""

import dagster as dg

from agents_pipeline.migration.jobs import LEGACY_IMPORT, sqlite_migration_job

defs = dg.Definitions(assets=[LEGACY_IMPORT], jobs=[sqlite_migration_job])
