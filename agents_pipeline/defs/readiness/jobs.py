"""Readiness on demand, from the Launchpad or `agents-pipeline launch`."""

import dagster as dg

platform_readiness_job = dg.define_asset_job(
    "platform_readiness_job",
    selection=dg.AssetSelection.assets("platform_readiness"),
    description="Runs the readiness checks on demand and records them on platform_readiness.",
    tags={"agents_pipeline/job": "platform_readiness_job", "agents_pipeline/kind": "light"},
)
