"""Daily database care: partitions ahead, statistics on partitioned parents, vacuum, sizes.

Autovacuum vacuums and analyzes each partition but never analyzes a partitioned parent, so
plans over fleet.heartbeats use default estimates unless ANALYZE runs on it; that is done here
daily. VACUUM runs only where dead tuples call for it (autovacuum lagging behind a burst of
updates or deletes). Partitions for the coming days are created here too, so an insert never
has to create one (core's fallback) or fails for want of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from psycopg2 import sql

from agents_pipeline.defs.retention.partitions import ensure_future_partitions
from agents_pipeline.defs.retention.policy import TABLES, last_archivable_day, utc_today
from agents_pipeline.defs.retention.units import connect, min_day_sql

DAYS_AHEAD = 14
VACUUM_DEAD_RATIO = 0.10
VACUUM_MIN_DEAD = 10_000


@dataclass
class TableHealth:
    table: str
    total_bytes: int
    live_rows: int
    dead_rows: int
    oldest_day: date | None
    overdue_days: int          # days held past retention + 1 (0 when on time)

    @property
    def dead_ratio(self) -> float:
        return self.dead_rows / max(1, self.live_rows + self.dead_rows)


@dataclass
class MaintenanceReport:
    partitions_created: int = 0
    analyzed: list[str] = field(default_factory=list)
    vacuumed: list[str] = field(default_factory=list)
    database_bytes: int = 0
    tables: list[TableHealth] = field(default_factory=list)


def create_partitions_ahead(url: str, today: date | None = None, days_ahead: int = DAYS_AHEAD) -> int:
    today = today or utc_today()
    created = 0
    with connect(url) as conn:
        for name, spec in TABLES.items():
            if spec.partitioned:
                created += ensure_future_partitions(conn, name, today - timedelta(days=1),
                                                    today + timedelta(days=days_ahead))
    return created


def _dead_tuples(cur) -> dict[str, tuple[int, int]]:
    """(live, dead) per fleet table, partitions summed into their parent."""
    cur.execute("""
        SELECT coalesce(parent.relname, s.relname), sum(s.n_live_tup)::bigint, sum(s.n_dead_tup)::bigint
        FROM pg_stat_user_tables s
        LEFT JOIN pg_inherits i ON i.inhrelid = s.relid
        LEFT JOIN pg_class parent ON parent.oid = i.inhparent
        WHERE s.schemaname = 'fleet'
        GROUP BY 1""")
    return {name: (live, dead) for name, live, dead in cur.fetchall()}


def vacuum_candidates(cur) -> list[str]:
    """Tables and partitions whose dead tuples exceed the threshold."""
    cur.execute("""
        SELECT relname FROM pg_stat_user_tables
        WHERE schemaname = 'fleet' AND n_dead_tup >= %s
          AND n_dead_tup::float8 / greatest(1, n_live_tup + n_dead_tup) >= %s
        ORDER BY n_dead_tup DESC""", (VACUUM_MIN_DEAD, VACUUM_DEAD_RATIO))
    return [r[0] for r in cur.fetchall()]


def held_days(cur, table: str) -> set[date]:
    cur.execute("SELECT day FROM fleet.retention_holds WHERE table_name = %s AND held_until > now()", (table,))
    return {r[0] for r in cur.fetchall()}


def oldest_unheld_day(cur, table: str) -> date | None:
    """The oldest UTC day the table still holds in PostgreSQL, restored (held) days excepted."""
    spec = TABLES[table]
    holds = held_days(cur, table)
    if spec.partitioned:
        cur.execute("""
            SELECT to_date(substring(c.relname FROM '_p(\\d{8})$'), 'YYYYMMDD')
            FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
            WHERE i.inhparent = %s::regclass AND c.relname ~ '_p\\d{8}$'
            ORDER BY 1""", (f"fleet.{table}",))
        days = [r[0] for r in cur.fetchall()]
        for day in days:
            if day in holds:
                continue
            cur.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(
                sql.Identifier("fleet", f"{table}_p{day:%Y%m%d}")))
            if cur.fetchone()[0]:
                return day
        return None
    cur.execute(min_day_sql(spec))
    day = cur.fetchone()[0]
    while day is not None and day in holds:   # skip restored days: the next unheld one counts
        cur.execute(sql.SQL("{} AND {} >= %s").format(min_day_sql(spec), sql.Identifier(spec.time_column)),
                    (f"{day + timedelta(days=1)} 00:00:00+00",))
        day = cur.fetchone()[0]
    return day


def table_health(cur, retention: dict[str, int], today: date | None = None) -> list[TableHealth]:
    today = today or utc_today()
    dead = _dead_tuples(cur)
    out = []
    for table in TABLES:
        cur.execute("SELECT pg_total_relation_size(%s::regclass) + coalesce((SELECT sum(pg_total_relation_size(inhrelid)) "
                    "FROM pg_inherits WHERE inhparent = %s::regclass), 0)", (f"fleet.{table}", f"fleet.{table}"))
        size = int(cur.fetchone()[0])
        oldest = oldest_unheld_day(cur, table)
        # A day is overdue once it is a full day older than the newest archivable one.
        limit = last_archivable_day(retention[table], today) - timedelta(days=1)
        overdue = (limit - oldest).days + 1 if oldest is not None and oldest <= limit else 0
        live, dead_n = dead.get(table, (0, 0))
        out.append(TableHealth(table, size, live, dead_n, oldest, overdue))
    return out


def run_maintenance(url: str, retention: dict[str, int], today: date | None = None) -> MaintenanceReport:
    report = MaintenanceReport()
    report.partitions_created = create_partitions_ahead(url, today)
    with connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SET lock_timeout = '5s'")
        for name, spec in TABLES.items():
            if spec.partitioned:   # autovacuum never analyzes partitioned parents
                cur.execute(sql.SQL("ANALYZE {}").format(sql.Identifier("fleet", name)))
                report.analyzed.append(name)
        for rel in vacuum_candidates(cur):
            cur.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier("fleet", rel)))
            report.vacuumed.append(rel)
        cur.execute("SELECT pg_database_size(current_database())")
        report.database_bytes = int(cur.fetchone()[0])
        report.tables = table_health(cur, retention, today)
    return report


def pending_days(url: str, retention: dict[str, int], today: date | None = None,
                 limit: int = 62) -> dict[str, list[date]]:
    """Days past retention that PostgreSQL still holds (held days excepted), oldest first."""
    out: dict[str, list[date]] = {}
    with connect(url) as conn, conn.cursor() as cur:
        for table, spec in TABLES.items():
            last = last_archivable_day(retention[table], today)
            holds = held_days(cur, table)
            if spec.partitioned:
                cur.execute("""
                    SELECT to_date(substring(c.relname FROM '_p(\\d{8})$'), 'YYYYMMDD') AS day
                    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                    WHERE n.nspname = 'fleet' AND c.relname ~ %s AND c.relkind = 'r'
                    ORDER BY 1""", (f"^{table}_p\\d{{8}}$",))
                days = [r[0] for r in cur.fetchall()]
            else:
                cur.execute(sql.SQL(
                    "SELECT DISTINCT ({col} AT TIME ZONE 'UTC')::date FROM {tbl} t WHERE {col} < %s {keep} ORDER BY 1"
                ).format(col=sql.Identifier(spec.time_column), tbl=sql.Identifier("fleet", table),
                         keep=sql.SQL("AND NOT ({})".format(spec.keep_filter.replace("{t}", "t")))
                         if spec.keep_filter else sql.SQL("")),
                    (f"{last + timedelta(days=1)} 00:00:00+00",))
                days = [r[0] for r in cur.fetchall()]
            out[table] = [d for d in days if d <= last and d not in holds][:limit]
        conn.rollback()
    return out
