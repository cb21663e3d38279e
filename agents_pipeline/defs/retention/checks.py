"""The janitor's alarm: a table holding days older than its retention plus one day."""

import dagster as dg

from agents_pipeline.defs.retention import maintenance, policy
from agents_pipeline.defs.retention.assets import database_maintenance
from agents_pipeline.defs.retention.units import connect
from agents_pipeline.platform.resources import PostgresResource


def retention_overdue(url: str) -> list[maintenance.TableHealth]:
    with connect(url) as conn, conn.cursor() as cur:
        return maintenance.table_health(cur, policy.retention_days())


@dg.asset_check(
    asset=database_maintenance,
    description=("Fails when a table still holds data older than its retention plus a day (restored, "
                 "held days excepted): archival has stalled or is switched off."),
)
def retention_enforced(postgres: PostgresResource) -> dg.AssetCheckResult:
    health = retention_overdue(postgres.url)
    late = [t for t in health if t.overdue_days > 0]
    root = policy.archive_root(postgres.url)
    meta = {f"{t.table}_overdue_days": t.overdue_days for t in health}
    meta["archival_enabled"] = root is not None
    return dg.AssetCheckResult(
        passed=not late,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=meta,
        description=None if not late else (
            "overdue: " + ", ".join(f"{t.table} holds {t.oldest_day} ({t.overdue_days} days late)" for t in late)
            + ("" if root else f"; archival is off ({policy.ARCHIVE_DIR_ENV} unset)")),
    )
