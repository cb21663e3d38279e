"""An agent's story as materialization metadata: a few numbers (plotted across agents, one
point per partition) and the tables an operator reads on the agent's partition page.

Table cells are text in the UI (``MetadataValue.table``), so names, reasons and messages the
agent chose cannot become links or images; long text is cut.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import dagster as dg

from agents_pipeline.defs.agents.story import AgentStory

TEXT = 300


def _text(value: Any) -> str | None:
    return None if value is None else str(value)[:TEXT]


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _num(value: Any, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _table(columns: list[tuple[str, str]], rows: list[dict[str, Any]]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in rows],
                                  schema=dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in columns]))


def story_metadata(story: AgentStory) -> dict[str, Any]:
    latest = story.hourly[0] if story.hourly else {}
    meta: dict[str, Any] = {
        "status": story.status,
        "status_since": _when(story.status_since) or "-",
        "last_heartbeat": _when(story.last_seen) or "never",
        "open_alerts": len(story.open_alerts),
        "status_changes_shown": len(story.status_changes),
        "heartbeat_gaps_6h": int(story.heartbeat_gaps[0]["total"]) if story.heartbeat_gaps else 0,
        "p95_cpu_percent_last_hour": _num(latest.get("p95_cpu_percent")) or 0.0,
        "p95_rss_mib_last_hour": _num(latest.get("p95_rss_mib")) or 0.0,
        "llm_tokens_14d": int(sum(d["tokens"] or 0 for d in story.llm_days)),
        "llm_cost_usd_14d": round(sum(d["cost_usd"] or 0.0 for d in story.llm_days), 4),
        "status_changes": _table(
            [("changed_at", "string"), ("from", "string"), ("to", "string"), ("reason", "string"), ("message", "string")],
            [{"changed_at": _when(c["changed_at"]), "from": c["from_status"], "to": c["to_status"],
              "reason": _text(c["reason"]), "message": _text(c["message"])} for c in story.status_changes]),
        "heartbeat_gaps": _table(
            [("silent_from", "string"), ("heard_again", "string"), ("seconds", "float")],
            [{"silent_from": _when(g["silent_from"]), "heard_again": _when(g["heard_again"]),
              "seconds": _num(g["seconds"])} for g in story.heartbeat_gaps]),
        "cpu_and_memory_by_hour": _table(
            [("hour", "string"), ("p95_cpu_percent", "float"), ("max_cpu_percent", "float"),
             ("p95_rss_mib", "float"), ("max_rss_mib", "float")],
            [{"hour": _when(h["hour"]), "p95_cpu_percent": _num(h["p95_cpu_percent"]),
              "max_cpu_percent": _num(h["max_cpu_percent"]), "p95_rss_mib": _num(h["p95_rss_mib"]),
              "max_rss_mib": _num(h["max_rss_mib"])} for h in story.hourly]),
        "llm_by_day": _table(
            [("day", "string"), ("runs", "int"), ("errors", "int"), ("tokens", "int"), ("cost_usd", "float")],
            [{"day": d["day"].isoformat(), "runs": d["runs"], "errors": d["errors"], "tokens": int(d["tokens"] or 0),
              "cost_usd": _num(d["cost_usd"], 4)} for d in story.llm_days]),
        "open_alerts_table": _table(
            [("opened_at", "string"), ("kind", "string"), ("severity", "string"), ("subject", "string")],
            [{"opened_at": _when(a["opened_at"]), "kind": a["kind"], "severity": a["severity"],
              "subject": _text(a["subject"])} for a in story.open_alerts]),
        "tasks": _table(
            [("task_id", "int"), ("kind", "string"), ("state", "string"), ("attempts", "int"),
             ("created_at", "string"), ("finished_at", "string"), ("last_error", "string")],
            [{"task_id": t["task_id"], "kind": t["kind"], "state": t["state"], "attempts": t["attempts"],
              "created_at": _when(t["created_at"]), "finished_at": _when(t["finished_at"]),
              "last_error": _text(t["last_error"])} for t in story.tasks]),
    }
    return meta
