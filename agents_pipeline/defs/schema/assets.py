"""The shared-state schema as an asset: materializing it applies pending migrations."""


import dagster as dg

from agents_pipeline.core import migrations
from agents_pipeline.platform.resources import PostgresResource


def _applied_and_tables(postgres: PostgresResource) -> tuple[int, int]:
    raw = postgres.engine.raw_connection()
    try:
        version = migrations.current_version(raw.driver_connection)
        with raw.driver_connection.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'fleet'")
            tables = cur.fetchone()[0]
        raw.driver_connection.rollback()
        return version, tables
    finally:
        raw.close()


@dg.asset(
    group_name="platform",
    kinds={"postgres"},
    owners=["team:agents-platform"],
    description="The fleet schema in PostgreSQL, brought to the latest numbered migration in sql/.",
)
def shared_state_schema(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    raw = postgres.engine.raw_connection()
    try:
        applied = migrations.migrate(raw.driver_connection)
    finally:
        raw.close()
    version, tables = _applied_and_tables(postgres)
    context.log.info("applied %s", ", ".join(applied) or "nothing: schema is current")
    return dg.MaterializeResult(metadata={
        "schema_version": version,
        "latest_version": migrations.latest_version(),
        "migrations_applied_now": len(applied),
        "tables": tables,
    })


@dg.asset_check(asset=shared_state_schema, description="The database is at the latest migration in sql/.")
def schema_version_current(postgres: PostgresResource) -> dg.AssetCheckResult:
    version, _ = _applied_and_tables(postgres)
    latest = migrations.latest_version()
    return dg.AssetCheckResult(
        passed=version == latest,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"schema_version": version, "latest_version": latest},
        description=None if version == latest else f"database at {version}, code expects {latest}: run `agents-pipeline db migrate`",
    )
