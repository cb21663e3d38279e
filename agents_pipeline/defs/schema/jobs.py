"""The schema job: applies pending migrations from the Launchpad or `agents-pipeline launch`."""

import dagster as dg

schema_migrate_job = dg.define_asset_job(
    "schema_migrate_job",
    selection=dg.AssetSelection.assets("shared_state_schema"),
    description="Applies pending schema migrations by materializing shared_state_schema "
                "(what `agents-pipeline db migrate` does, as a run the UI records).",
    # One run per job at a time under deploy/dagster.yaml's per-job limit.
    tags={"agents_pipeline/job": "schema_migrate_job", "agents_pipeline/kind": "light"},
)
