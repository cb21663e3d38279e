"""The run's outcome beyond verification: too many rows of a known table rejected.

A file in another layout verifies perfectly while rejecting every row (each reject is counted
and kept), which once exited 0 with a million rows rejected. Over a set share of a known
table's rows, the run is a failure with one line that names the table, the top reasons, and
how to draft a mapping; ``--accept-rejects`` (``accept_rejects`` in the job) accepts it.
"""

from __future__ import annotations

from agents_pipeline.defs.migration.loader import reason_key
from agents_pipeline.defs.migration.report import RunReport

DEFAULT_MAX_REJECT_SHARE = 0.01
TOP_REASONS = 3


def _top_reasons(conn, source_id: int, table: str, reasons: dict[str, int]) -> list[tuple[str, int]]:
    """This run's reasons, or (a re-run that read nothing new) the ones stored for the table."""
    if reasons or conn is None:
        return sorted(reasons.items(), key=lambda kv: -kv[1])[:TOP_REASONS]
    with conn, conn.cursor() as cur:   # the commonest reasons, then grouped as the report groups them
        cur.execute("""SELECT reason, count(*) FROM fleet.legacy_rejects WHERE source_id = %s AND table_name = %s
                       GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1000""", (source_id, table))
        grouped: dict[str, int] = {}
        for reason, count in cur.fetchall():
            grouped[reason_key(reason)] = grouped.get(reason_key(reason), 0) + count
    return sorted(grouped.items(), key=lambda kv: -kv[1])[:TOP_REASONS]


def rejects_over(report: RunReport, max_share: float, conn, source_id: int) -> str | None:
    """One line naming each known table whose rejected share exceeds ``max_share``, or None."""
    parts = []
    for row in report.tables:
        if not row.target.startswith("fleet.") or row.read == 0:
            continue
        share = row.rejected / row.read
        if share <= max_share:
            continue
        top = ", ".join(f"{reason} ({count:,})" for reason, count in _top_reasons(conn, source_id, row.table, row.reasons))
        parts.append(f"{row.label}: {row.rejected:,} of {row.read:,} rows rejected ({share:.1%}); top reasons: {top}")
    if not parts:
        return None
    path = report.path if " " not in report.path else f"'{report.path}'"
    head = f"rejects over the {max_share:.1%} allowed per table: " + "; ".join(parts)
    if report.mapping is not None:
        return head + ". Check the mapping given with --mapping (the reasons name the fields), or pass " \
                      "--accept-rejects to accept these rejects"
    return (head + f". Draft a mapping for this file's layout with `agents-pipeline migrate-sqlite {path} --dry-run "
            "--write-mapping mapping.yaml`, edit it, run again with `--mapping mapping.yaml`; or pass "
            "--accept-rejects to accept these rejects")
