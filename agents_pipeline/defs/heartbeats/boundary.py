"""The agent boundary, watched from the evaluator: rows held locked, agents kept throttled.

The health evaluation skips an agent row that another session holds (it must never wait on
an agent), so a holder could keep that agent from being judged. ``fleet.evaluate_health``
remembers the rows it skipped and who held them; ``fleet.check_agent_row_locks`` raises an
alert naming the holder once a hold passes ``AGENTS_PIPELINE_LOCK_HOLD_LIMIT_S`` and ends the
holder's session when it is an agent login. Rate-limit refusals are counted per agent and kind
in the database (they are returned, not raised, so the counts commit); an agent refused for
``AGENTS_PIPELINE_THROTTLE_ALERT_S`` on end gets an alert. Both run in the evaluation's
transaction, and what they found shows in the agent_health asset's metadata.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dagster as dg
import sqlalchemy as sa

REFUSED_ROWS = 20


@dataclass
class BoundaryReport:
    held_rows: list[dict[str, Any]] = field(default_factory=list)
    throttled: list[dict[str, Any]] = field(default_factory=list)
    refused_by_agent: list[dict[str, Any]] = field(default_factory=list)
    refused_total: int = 0


def check(conn: sa.Connection, channels: list[str], *, lock_hold_s: float, throttle_s: float,
          now: datetime | None = None) -> BoundaryReport:
    """Runs both checks in the caller's transaction (after fleet.evaluate_health)."""
    params = {"now": now, "channels": channels, "hold": lock_hold_s, "throttle": throttle_s}
    held = [dict(r._mapping) for r in conn.execute(sa.text("""
        SELECT name, holder_pid, holder_login, round(held_s::numeric, 1)::float AS held_s, ended
        FROM fleet.check_agent_row_locks(coalesce(CAST(:now AS timestamptz), now()),
                                         make_interval(secs => :hold), CAST(:channels AS text[]))"""), params)]
    throttled = [dict(r._mapping) for r in conn.execute(sa.text("""
        SELECT name, kinds, refused, round(throttled_s::numeric, 1)::float AS throttled_s
        FROM fleet.check_throttled_agents(coalesce(CAST(:now AS timestamptz), now()),
                                          make_interval(secs => :throttle), CAST(:channels AS text[]))"""), params)]
    refused = [dict(r._mapping) for r in conn.execute(sa.text("""
        SELECT a.name, b.kind, b.refused_total AS refused, b.last_refused_at
        FROM fleet.rate_buckets b JOIN fleet.agents a ON a.agent_id = b.agent_id
        WHERE b.refused_total > 0
        ORDER BY b.refused_total DESC, a.name, b.kind LIMIT :limit"""), {"limit": REFUSED_ROWS})]
    total = conn.execute(sa.text("SELECT coalesce(sum(refused_total), 0) FROM fleet.rate_buckets")).scalar_one()
    return BoundaryReport(held, throttled, refused, int(total))


def metadata(report: BoundaryReport) -> dict[str, object]:
    """Plotted counts, and the refusals per agent as a table (cells render as text, not markdown)."""
    meta: dict[str, object] = {
        "agent_rows_held": len(report.held_rows),
        "agents_throttled": len(report.throttled),
        "rate_limit_refusals_total": report.refused_total,
    }
    if report.refused_by_agent:
        meta["rate_limit_refusals"] = dg.MetadataValue.table(
            records=[dg.TableRecord({"agent": r["name"], "kind": r["kind"], "refused": int(r["refused"]),
                                     "last_refused_at": r["last_refused_at"].isoformat()})
                     for r in report.refused_by_agent],
            schema=dg.TableSchema(columns=[
                dg.TableColumn("agent", "string"), dg.TableColumn("kind", "string"),
                dg.TableColumn("refused", "int"), dg.TableColumn("last_refused_at", "string")]),
        )
    if report.held_rows:
        meta["agent_rows_held_by"] = dg.MetadataValue.table(
            records=[dg.TableRecord({"agent": r["name"], "holder_pid": int(r["holder_pid"]),
                                     "holder_login": r["holder_login"] or "", "held_s": float(r["held_s"]),
                                     "ended": bool(r["ended"])}) for r in report.held_rows],
            schema=dg.TableSchema(columns=[
                dg.TableColumn("agent", "string"), dg.TableColumn("holder_pid", "int"),
                dg.TableColumn("holder_login", "string"), dg.TableColumn("held_s", "float"),
                dg.TableColumn("ended", "bool")]),
        )
    return meta
