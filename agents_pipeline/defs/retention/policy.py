"""Which tables may be archived, how long each is kept, and where the archive lives.

The allow-list is fixed in code: archival drops partitions and deletes rows, so a table gets
here only after someone has decided how its days are cut (time column, keys, dependent rows).
Retention is read from AGENTS_PIPELINE_RETENTION (``heartbeats=30,alerts=400``); Dagster needs
it when the code location loads (the archive assets' partitions end at ``-retention``), so the
same variable serves the UI, the daemon and the CLI.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from agents_pipeline.core.errors import ConfigurationError, ValidationError

RETENTION_ENV = "AGENTS_PIPELINE_RETENTION"
ARCHIVE_DIR_ENV = "AGENTS_PIPELINE_ARCHIVE_DIR"
ARCHIVE_START_ENV = "AGENTS_PIPELINE_ARCHIVE_START_DATE"
MIN_RETENTION_DAYS = 2       # samples may arrive a day late: never archive yesterday
MAX_RETENTION_DAYS = 3650
DISABLED_WORDS = {"off", "none", "disabled"}


@dataclass(frozen=True)
class ChildSpec:
    """Rows of another table that reference the archived rows and go with them."""

    table: str
    fk_column: str
    parent_column: str


@dataclass(frozen=True)
class TableSpec:
    name: str
    time_column: str
    partitioned: bool
    retention_class: str
    default_days: int
    key_columns: tuple[str, ...] = ()
    keep_filter: str = ""          # SQL over alias {t}: rows matching it are never archived
    children: tuple[ChildSpec, ...] = ()


RAW = "raw_telemetry"
HISTORY = "history"

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in (
    TableSpec("heartbeats", "received_at", True, RAW, 30),
    TableSpec("perf_samples", "sampled_at", True, RAW, 30),
    TableSpec("perf_rollups", "hour", False, HISTORY, 400,
              key_columns=("hour", "host", "agent_id", "metric")),
    TableSpec("status_changes", "changed_at", False, HISTORY, 400, key_columns=("change_id",)),
    # An alert still open is live state (one open alert per key), whatever its age.
    TableSpec("alerts", "opened_at", False, HISTORY, 400, key_columns=("alert_id",),
              keep_filter="{t}.resolved_at IS NULL",
              children=(ChildSpec("notifications", "alert_id", "alert_id"),)),
    TableSpec("llm_runs", "start_time", False, HISTORY, 400, key_columns=("run_id",)),
    # Finished tasks (done, failed) by the day they finished; a dead letter waits for an operator
    # (dead_letter_job) whatever its age, and ready or claimed tasks have no finished_at.
    TableSpec("tasks", "finished_at", False, RAW, 30, key_columns=("task_id",), keep_filter="{t}.state = 'dead'"),
)}
CLASSES: dict[str, tuple[str, ...]] = {
    RAW: ("heartbeats", "perf_samples", "tasks"),
    HISTORY: ("perf_rollups", "status_changes", "alerts", "llm_runs"),
}


def table_spec(name: str) -> TableSpec:
    """The spec of an allow-listed table; anything else is refused, naming the allowed ones."""
    spec = TABLES.get(name)
    if spec is None:
        raise ValidationError(
            f"table {name!r} is not subject to retention; allowed: {', '.join(TABLES)}")
    return spec


def parse_retention(text: str | None) -> dict[str, int]:
    """Retention days per table: the defaults, overridden by ``table=days`` pairs."""
    days = {name: spec.default_days for name, spec in TABLES.items()}
    for item in (text or "").replace(";", ",").split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep:
            raise ConfigurationError(f"{RETENTION_ENV}: {item!r} is not table=days")
        if name not in TABLES:
            raise ConfigurationError(
                f"{RETENTION_ENV}: unknown table {name!r}; allowed: {', '.join(TABLES)}")
        try:
            n = int(value.strip().removesuffix("d"))
        except ValueError:
            raise ConfigurationError(f"{RETENTION_ENV}: {name}={value.strip()!r} is not a number of days") from None
        if not MIN_RETENTION_DAYS <= n <= MAX_RETENTION_DAYS:
            raise ConfigurationError(
                f"{RETENTION_ENV}: {name}={n} is outside {MIN_RETENTION_DAYS}..{MAX_RETENTION_DAYS} days")
        days[name] = n
    return days


def retention_days() -> dict[str, int]:
    return parse_retention(os.environ.get(RETENTION_ENV))


def class_min_days(retention_class: str, days: dict[str, int] | None = None) -> int:
    """The shortest retention in a class: its archive partitions end that many days back."""
    days = days or retention_days()
    return min(days[t] for t in CLASSES[retention_class])


def utc_today() -> date:
    return datetime.now(UTC).date()


def last_archivable_day(days: int, today: date | None = None) -> date:
    """The newest UTC day wholly older than ``days`` days: [day, day+1) ends at or before now - days."""
    return (today or utc_today()) - timedelta(days=days + 1)


def ensure_past_retention(table: str, day: date, days: int, today: date | None = None) -> None:
    """Refuses a day still inside retention (the last guard before anything is removed)."""
    last = last_archivable_day(days, today)
    if day > last:
        raise ValidationError(
            f"{table} {day.isoformat()} is still inside its {days}-day retention "
            f"(the newest archivable day is {last.isoformat()})")


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValidationError(f"day {text!r} is not a date like 2025-01-31") from None


def archive_start_date() -> str:
    """First day the archive assets offer; days before it are reached by the CLI."""
    raw = os.environ.get(ARCHIVE_START_ENV, "2025-01-01")
    try:
        return date.fromisoformat(raw).isoformat()
    except ValueError:
        raise ConfigurationError(f"{ARCHIVE_START_ENV} must be a date like 2025-01-01, got {raw!r}") from None


def archive_root(database_url: str | None = None) -> Path | None:
    """The archive folder, or None when archival is switched off.

    AGENTS_PIPELINE_ARCHIVE_DIR wins ("off" disables). Without it, only the project-local
    cluster (the local default) gets ``<project>/archive``: pointing the product at an existing
    database must never drop its data on first start.
    """
    raw = os.environ.get(ARCHIVE_DIR_ENV)
    if raw is not None and raw.strip():
        if raw.strip().lower() in DISABLED_WORDS:
            return None
        path = Path(raw.strip()).expanduser()
        if not path.is_absolute():   # the same folder whatever the process's working directory
            from agents_pipeline.core.settings import PROJECT_DIR

            path = PROJECT_DIR / path
        return path
    if _is_local_default(database_url):
        from agents_pipeline.core.settings import PROJECT_DIR

        return PROJECT_DIR / "archive"
    return None


def _is_local_default(database_url: str | None) -> bool:
    from agents_pipeline.core.dsn import connect_kwargs
    from agents_pipeline.core.localdb import LocalCluster

    if database_url is None:
        from agents_pipeline.core.settings import DATABASE_URL

        if os.environ.get(DATABASE_URL):
            database_url = os.environ[DATABASE_URL]
        else:
            return True
    try:
        host = str(connect_kwargs(database_url).get("host", ""))
    except ConfigurationError:
        return False
    return host == str(LocalCluster.default().sockdir)


def archive_root_or_explain(database_url: str | None = None) -> tuple[Path | None, str]:
    root = archive_root(database_url)
    if root is None:
        return None, (f"archival is off: set {ARCHIVE_DIR_ENV} to a folder to enable it "
                      "(nothing is removed from PostgreSQL until then)")
    return root, f"archive folder {root}"
