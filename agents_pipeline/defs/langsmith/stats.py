"""Daily LLM usage per agent and model, over pulled runs and local conversations alike.

A call counts once: LLM runs pulled from LangSmith, plus local conversations whose run id has
not come back from LangSmith (a pushed conversation that the sync pulls back is the same call).
Chains and tools are not counted: their tokens are their LLM children's, already counted.
Days are UTC days of the call's start.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa

from agents_pipeline.platform.markdown import escape_md

USAGE = sa.text("""
WITH calls AS (
    SELECT coalesce(a.name, r.agent_name, '(unattributed)') AS agent, coalesce(r.model, '(unknown)') AS model,
           (r.error IS NOT NULL OR r.status = 'error') AS failed,
           coalesce(r.prompt_tokens, 0) AS prompt_tokens, coalesce(r.completion_tokens, 0) AS completion_tokens,
           coalesce(r.total_cost, 0) AS cost,
           extract(epoch FROM r.end_time - r.start_time) * 1000 AS latency_ms, true AS from_langsmith
    FROM fleet.llm_runs r LEFT JOIN fleet.agents a ON a.agent_id = r.agent_id
    WHERE r.run_type = 'llm' AND r.start_time >= :lo AND r.start_time < :hi
    UNION ALL
    SELECT coalesce(a.name, '(unattributed)'), coalesce(c.model, '(unknown)'), c.error IS NOT NULL,
           coalesce(c.prompt_tokens, 0), coalesce(c.completion_tokens, 0), coalesce(c.cost, 0),
           c.latency_ms, false
    FROM fleet.llm_conversations c LEFT JOIN fleet.agents a ON a.agent_id = c.agent_id
    WHERE c.created_at >= :lo AND c.created_at < :hi
      AND NOT EXISTS (SELECT 1 FROM fleet.llm_runs r WHERE r.run_id = c.run_id)
)
SELECT agent, model, GROUPING(agent, model) = 3 AS is_total,
       count(*) AS runs, count(*) FILTER (WHERE failed) AS errors,
       sum(prompt_tokens)::bigint AS prompt_tokens, sum(completion_tokens)::bigint AS completion_tokens,
       sum(cost) AS total_cost,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms) AS latency_p50_ms,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms) AS latency_p95_ms,
       count(*) FILTER (WHERE from_langsmith) AS from_langsmith,
       count(*) FILTER (WHERE NOT from_langsmith) AS from_local
FROM calls
GROUP BY GROUPING SETS ((agent, model), ())
ORDER BY is_total, agent, model
""")

TABLE_ROWS = 25
TABLE_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("agent", "string"), dg.TableColumn("model", "string"), dg.TableColumn("runs", "int"),
    dg.TableColumn("errors", "int"), dg.TableColumn("error_rate", "float"), dg.TableColumn("prompt_tokens", "int"),
    dg.TableColumn("completion_tokens", "int"), dg.TableColumn("cost_usd", "float"),
    dg.TableColumn("latency_p50_ms", "float"), dg.TableColumn("latency_p95_ms", "float")])
# fleet.llm_usage_daily, for the asset's column schema.
COLUMN_SCHEMA = dg.TableSchema(columns=[
    dg.TableColumn("day", "date", description="UTC day of the calls' start"), dg.TableColumn("agent", "string"),
    dg.TableColumn("model", "string"), dg.TableColumn("runs", "integer"), dg.TableColumn("errors", "integer"),
    dg.TableColumn("prompt_tokens", "bigint"), dg.TableColumn("completion_tokens", "bigint"),
    dg.TableColumn("total_cost", "numeric", description="USD"), dg.TableColumn("latency_p50_ms", "float8"),
    dg.TableColumn("latency_p95_ms", "float8"), dg.TableColumn("from_langsmith", "integer"),
    dg.TableColumn("from_local", "integer")])

FIELDS = ("runs", "errors", "prompt_tokens", "completion_tokens", "total_cost", "latency_p50_ms",
          "latency_p95_ms", "from_langsmith", "from_local")


@dataclass
class DayUsage:
    day: date
    groups: list[dict[str, Any]]   # one per (agent, model)
    total: dict[str, Any]          # the whole day

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.groups, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def metadata(self) -> dict[str, Any]:
        """Numbers the UI plots per partition, and the per-agent/model table."""
        t = self.total
        runs = int(t.get("runs") or 0)
        return {
            "runs": runs,
            "errors": int(t.get("errors") or 0),
            "error_rate": round((t.get("errors") or 0) / runs, 4) if runs else 0.0,
            "prompt_tokens": int(t.get("prompt_tokens") or 0),
            "completion_tokens": int(t.get("completion_tokens") or 0),
            "cost_usd": round(float(t.get("total_cost") or 0), 6),
            "latency_p50_ms": round(float(t.get("latency_p50_ms") or 0), 1),
            "latency_p95_ms": round(float(t.get("latency_p95_ms") or 0), 1),
            "dagster/row_count": len(self.groups),
            "agents": len({g["agent"] for g in self.groups}),
            "models": len({g["model"] for g in self.groups}),
        }

    def ui_metadata(self) -> dict[str, Any]:
        """What a materialization of the day carries: the numbers and the table."""
        return {**self.metadata(), "by_agent_and_model": self.table()}

    def table(self) -> dg.TableMetadataValue:
        """The day per agent and model, the costliest first (at most TABLE_ROWS rows): the UI
        renders table cells as text, so names from runs cannot add links."""
        rows = sorted(self.groups, key=lambda g: -float(g["total_cost"] or 0))[:TABLE_ROWS]
        return dg.MetadataValue.table(
            records=[dg.TableRecord({
                "agent": str(g["agent"])[:80], "model": str(g["model"])[:80], "runs": int(g["runs"]),
                "errors": int(g["errors"]), "error_rate": round(g["errors"] / g["runs"], 4) if g["runs"] else 0.0,
                "prompt_tokens": int(g["prompt_tokens"] or 0), "completion_tokens": int(g["completion_tokens"] or 0),
                "cost_usd": round(float(g["total_cost"] or 0), 4),
                "latency_p50_ms": None if g["latency_p50_ms"] is None else round(float(g["latency_p50_ms"])),
                "latency_p95_ms": None if g["latency_p95_ms"] is None else round(float(g["latency_p95_ms"]))})
                for g in rows],
            schema=TABLE_SCHEMA)

    def markdown(self) -> str:
        if not self.groups:
            return f"No LLM calls on {self.day.isoformat()}."
        lines = ["| agent | model | runs | errors | error rate | prompt tokens | completion tokens | cost (USD) | p50 ms | p95 ms |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for g in self.groups:
            rate = g["errors"] / g["runs"] if g["runs"] else 0
            lines.append(f"| {_cell(g['agent'])} | {_cell(g['model'])} | {g['runs']} | {g['errors']} | {rate:.1%} | "
                         f"{g['prompt_tokens']} | {g['completion_tokens']} | {float(g['total_cost']):.4f} | "
                         f"{_ms(g['latency_p50_ms'])} | {_ms(g['latency_p95_ms'])} |")
        return "\n".join(lines)


def _cell(text: str) -> str:
    """Agent and model names come from the runs agents log: escaped, so they cannot add links."""
    return escape_md(text, limit=80)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def day_bounds(day: date) -> tuple[datetime, datetime]:
    lo = datetime.combine(day, time(0), tzinfo=UTC)
    return lo, lo + timedelta(days=1)


def compute_day(conn: sa.Connection, day: date) -> DayUsage:
    lo, hi = day_bounds(day)
    groups: list[dict[str, Any]] = []
    total: dict[str, Any] = {}
    for row in conn.execute(USAGE, {"lo": lo, "hi": hi}).mappings():
        values = {k: row[k] for k in FIELDS}
        if row["is_total"]:
            total = values
        else:
            groups.append({"agent": row["agent"], "model": row["model"], **values})
    return DayUsage(day, groups, total)


def write_day(conn: sa.Connection, usage: DayUsage) -> None:
    """Replaces the day's rows in fleet.llm_usage_daily (the caller's transaction)."""
    conn.execute(sa.text("DELETE FROM fleet.llm_usage_daily WHERE day = :d"), {"d": usage.day})
    if usage.groups:
        conn.execute(sa.text("""
            INSERT INTO fleet.llm_usage_daily (day, agent, model, runs, errors, prompt_tokens, completion_tokens,
                total_cost, latency_p50_ms, latency_p95_ms, from_langsmith, from_local)
            VALUES (:day, :agent, :model, :runs, :errors, :prompt_tokens, :completion_tokens, :total_cost,
                :latency_p50_ms, :latency_p95_ms, :from_langsmith, :from_local)"""),
            [{"day": usage.day, **g} for g in usage.groups])


def refresh_day(engine: sa.Engine, day: date) -> DayUsage:
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended('llm_usage_daily:' || :d, 0))"),
                     {"d": day.isoformat()})
        usage = compute_day(conn, day)
        write_day(conn, usage)
    return usage
