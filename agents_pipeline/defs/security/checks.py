"""The privilege audit as an asset check on the shared-state schema, so a migration that
opens a function to PUBLIC or a table to the agent login shows red in the Dagster UI."""

import dagster as dg

from agents_pipeline.defs.security.audit import audit
from agents_pipeline.platform.markdown import escape_md
from agents_pipeline.platform.resources import PostgresResource


@dg.asset_check(
    asset=dg.AssetKey("shared_state_schema"),
    name="database_roles_least_privilege",
    description="The agent login can execute the agent functions and nothing else; every fleet object "
                "belongs to the owner role; no fleet function is open to PUBLIC (agents-pipeline security audit).",
    blocking=False,
)
def database_roles_least_privilege(postgres: PostgresResource) -> dg.AssetCheckResult:
    db = postgres.database(maxconn=1)
    try:
        findings = audit(db)
    finally:
        db.close()
    rows = "\n".join(f"| {escape_md(f.role)} | {escape_md(f.problem)} |" for f in findings)
    return dg.AssetCheckResult(
        passed=not findings,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "findings": len(findings),
            "details": dg.MetadataValue.md("| role | problem |\n|---|---|\n" + rows if findings else "none"),
        },
        description=None if not findings else f"{len(findings)} privilege findings: run `agents-pipeline security audit`",
    )
