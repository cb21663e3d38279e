"""What an evaluation shows in Dagster: plotted numbers, the agents not up, and the health check.

Shared by the ``agent_health`` asset and the sensor that reports it every ~10 s, so the UI
reads the same fields whichever produced the latest materialization.
"""

from __future__ import annotations

from datetime import UTC

import dagster as dg

from agents_pipeline.defs.heartbeats.health import FleetSummary
from agents_pipeline.platform.markdown import escape_md

ASSET_KEY = dg.AssetKey("agent_health")
CHECK_NAME = "no_unsilenced_agents_down"
NAMED_IN_DESCRIPTION = 20


def _cell(value: object) -> str:
    """A table cell; names and messages come from agents, so they are escaped (no links, no images)."""
    if hasattr(value, "astimezone"):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return escape_md(value, limit=200)


def not_up_table(summary: FleetSummary) -> str:
    if not summary.not_up:
        return "Every agent is up."
    lines = ["| agent | status | since | last heartbeat | lifecycle | silenced | message |",
             "|---|---|---|---|---|---|---|"]
    for row in summary.not_up:
        lines.append("| " + " | ".join(_cell(row[k]) for k in (
            "name", "status", "status_since", "last_seen")) + f" | {row['lifecycle'] or ''}"
            + f" | {'yes' if row['silenced'] else ''} | " + _cell(row["status_message"]) + " |")
    hidden = summary.total - summary.counts.get("up", 0) - len(summary.not_up)
    if hidden > 0:
        lines.append(f"\n… and {hidden} more (`agents-pipeline status`).")
    return "\n".join(lines)


def metadata(summary: FleetSummary) -> dict[str, object]:
    """Numbers first (the UI plots each over the materializations), then the tables."""
    meta: dict[str, object] = {
        f"agents_{status}": summary.counts.get(status, 0) for status in ("up", "late", "down", "new", "paused")
    }
    meta.update({
        "agents_total": summary.total,
        "agents_down_unsilenced": len(summary.down_unsilenced),
        "agents_silenced": summary.silenced,
        "agents_clock_skewed": len(summary.clock_skewed),
        "transitions": len(summary.transitions),
        "open_alerts": summary.open_alerts,
        "evaluation_ms": round(summary.evaluation_ms, 2),
        "heartbeats_total": summary.heartbeat_total,
    })
    # What agents using the Agent helper say of themselves: a deploy shows as draining, then stopped.
    meta.update({f"lifecycle_{state}": n for state, n in summary.lifecycles.items()})
    if summary.heartbeats_per_minute is not None:
        meta["heartbeats_per_minute"] = round(summary.heartbeats_per_minute, 1)
    if summary.latest_heartbeat_at is not None:
        meta["latest_heartbeat_at"] = dg.MetadataValue.timestamp(summary.latest_heartbeat_at)
        meta["latest_heartbeat_age_s"] = round(
            (summary.evaluated_at - summary.latest_heartbeat_at).total_seconds(), 1)
    meta["agents_not_up"] = dg.MetadataValue.md(not_up_table(summary))
    if summary.clock_skewed:
        meta["clock_skew_over_5s"] = dg.MetadataValue.md("\n".join(
            ["| agent | skew (s, + = agent ahead) |", "|---|---|"]
            + [f"| {_cell(r['name'])} | {r['clock_skew_s']} |" for r in summary.clock_skewed]))
    return meta


def check_outcome(summary: FleetSummary, error_share: float) -> tuple[bool, dg.AssetCheckSeverity, str, dict]:
    """Warning while any unsilenced agent is down; error above ``error_share`` of the fleet."""
    down = summary.down_unsilenced
    share = summary.down_share
    severity = dg.AssetCheckSeverity.ERROR if down and share > error_share else dg.AssetCheckSeverity.WARN
    if down:
        # The UI renders a check's description as markdown, and agents choose their names.
        named = ", ".join(escape_md(name) for name in down[:NAMED_IN_DESCRIPTION])
        named += " …" if len(down) > NAMED_IN_DESCRIPTION else ""
        description = f"{len(down)} agent(s) down ({share:.0%} of the fleet): {named}"
    else:
        description = "no unsilenced agent is down"
    meta = {"agents_down": len(down), "down_share": round(share, 4), "error_share": error_share}
    return not down, severity, description, meta


def check_result(summary: FleetSummary, error_share: float) -> dg.AssetCheckResult:
    passed, severity, description, meta = check_outcome(summary, error_share)
    return dg.AssetCheckResult(check_name=CHECK_NAME, asset_key=ASSET_KEY, passed=passed, severity=severity,
                               description=description, metadata=meta)


def check_evaluation(summary: FleetSummary, error_share: float) -> dg.AssetCheckEvaluation:
    passed, severity, description, meta = check_outcome(summary, error_share)
    return dg.AssetCheckEvaluation(asset_key=ASSET_KEY, check_name=CHECK_NAME, passed=passed,
                                   severity=severity, description=description, metadata=meta, blocking=False)
