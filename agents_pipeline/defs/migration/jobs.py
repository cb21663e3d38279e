"""The Dagster face of the migration: an op job launched from the Launchpad with typed config.

A one-off side effect, not a recurring asset computation, so it is an op job; its report is
recorded as a materialization of the ``legacy_sqlite_import`` asset (numbers for the plots,
the per-table markdown table for people) and as the op's output metadata.
"""

import dagster as dg
from pydantic import Field

from agents_pipeline.platform.markdown import escape_md
from agents_pipeline.platform.resources import PostgresResource

LEGACY_IMPORT = dg.AssetSpec(
    "legacy_sqlite_import",
    group_name="migration",
    owners=["team:agents-platform"],
    kinds={"sqlite", "postgres"},
    description="History imported from a legacy SQLite shared-state file by sqlite_migration_job: one "
                "materialization per run, with the verified per-table report (rows read, written, rejected).",
)


class SqliteMigrationConfig(dg.Config):
    """What the Launchpad asks for."""

    path: str = Field(description="the legacy SQLite file, inside the folder AGENTS_PIPELINE_IMPORT_DIR of the "
                                  "host running the code location (absolute, or relative to that folder; a -wal "
                                  "file beside it is read too)")
    dry_run: bool = Field(default=False, description="read and convert everything, write nothing")
    batch_size: int = Field(default=20_000, ge=1, le=1_000_000, description="rows per committed batch")
    source_name: str | None = Field(default=None, description="name of this file across runs (default: its base name)")
    mapping: str | None = Field(default=None, description="a mapping file (YAML, drafted by `agents-pipeline migrate-sqlite "
                                "PATH --dry-run --write-mapping FILE`) for a file in another layout, inside "
                                "AGENTS_PIPELINE_IMPORT_DIR like the file")
    max_reject_share: float = Field(default=0.01, ge=0, le=1, description="the run fails when more than this share "
                                    "of a known table's rows is rejected")
    accept_rejects: bool = Field(default=False, description="succeed whatever share of rows is rejected")


def report_metadata(report) -> dict:
    totals = report.totals
    seconds = max(report.seconds, 1e-9)
    return {
        "report": dg.MetadataValue.md(report.to_markdown()),
        "source": report.source,
        "path": dg.MetadataValue.path(report.path),
        "dry_run": report.dry_run,
        "verified": report.ok,
        "rows_read": totals["read"],
        "rows_written": totals["written"],
        "rows_rejected": totals["rejected"],
        "rows_new_this_run": totals["new_this_run"],
        "placeholder_agents": report.placeholders_created,
        "seconds": round(report.seconds, 3),
        "rows_per_second": round(totals["new_this_run"] / seconds, 1),
        "mapped": report.mapping is not None,
    }


@dg.op(description="Migrates a legacy SQLite file into PostgreSQL, verified; fails when counts or checksums "
                   "do not add up.", tags={"domain": "migration"})
def migrate_sqlite_file(context: dg.OpExecutionContext, config: SqliteMigrationConfig,
                        postgres: PostgresResource) -> dg.Output:
    from agents_pipeline.core.errors import ConfigurationError, ValidationError
    from agents_pipeline.defs.migration.import_dir import import_path
    from agents_pipeline.defs.migration.mapping import MappingError, load_mapping
    from agents_pipeline.defs.migration.progress import LogProgress
    from agents_pipeline.defs.migration.runner import migrate_sqlite
    from agents_pipeline.defs.migration.source import LegacyFileError

    try:
        path = import_path(config.path)   # only inside AGENTS_PIPELINE_IMPORT_DIR (import_dir.py)
        mapping = load_mapping(import_path(config.mapping)) if config.mapping else None
    except (ConfigurationError, ValidationError, MappingError) as exc:
        raise dg.Failure(description=str(exc)) from None
    try:
        report = migrate_sqlite(path, None if config.dry_run else postgres.url, dry_run=config.dry_run,
                                batch_size=config.batch_size, source_name=config.source_name, log=context.log.info,
                                mapping=mapping, max_reject_share=config.max_reject_share,
                                accept_rejects=config.accept_rejects, progress=LogProgress(context.log.info))
    except (MappingError, LegacyFileError) as exc:   # the file or the mapping: one clear line, no traceback
        raise dg.Failure(description=str(exc)) from None
    metadata = report_metadata(report)
    if not config.dry_run:
        context.log_event(dg.AssetMaterialization(asset_key=LEGACY_IMPORT.key, metadata=metadata,
                                                  description=f"import of {escape_md(report.source)}"))
    if not report.ok:
        raise dg.Failure(description="the migration did not verify: " + "; ".join(
            report.problems or [f"{t.table}: {'; '.join(t.notes)}" for t in report.tables if t.verified is False]),
            metadata=metadata)
    if report.reject_problem:   # the same line the CLI prints before exiting 1
        raise dg.Failure(description=report.reject_problem, metadata=metadata)
    return dg.Output(report.to_dict()["totals"], metadata=metadata)


@dg.job(description="Import a legacy SQLite shared-state file (path in the Launchpad config). Re-runnable: "
                    "rows already imported are skipped; a killed run resumes after its last committed batch.",
        tags={"domain": "migration", "agents_pipeline/job": "sqlite_migration_job", "agents_pipeline/kind": "bulk"})
def sqlite_migration_job() -> None:
    migrate_sqlite_file()
