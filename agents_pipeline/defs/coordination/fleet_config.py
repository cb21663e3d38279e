"""The ``fleet_config`` asset: the fleet file in force and whether the registry still matches it.

Drift (an agent registered, changed or left behind by hand since the last `fleet apply`) is a
warning, not an error: the fleet keeps working, and the operator decides whether the file or the
registry is right. The file's path is AGENTS_PIPELINE_FLEET_FILE (default ``fleet.yaml`` in the
code location's working directory); with no file there is nothing to compare, and the check
says so and passes. Reported with the task queue by task_queue_sensor (one file read and one
registry query every 5 minutes), or materialized here on demand.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from agents_pipeline.core.errors import AgentsPipelineError
from agents_pipeline.defs.coordination import fleet_file, fleet_sync
from agents_pipeline.platform.markdown import escape_md
from agents_pipeline.platform.resources import PostgresResource

FLEET_FILE_ENV = "AGENTS_PIPELINE_FLEET_FILE"
DEFAULT_FLEET_FILE = "fleet.yaml"
ASSET_KEY = dg.AssetKey("fleet_config")
CHECK_NAME = "registry_matches_fleet_file"
LISTED = 50


def fleet_file_path() -> Path:
    return Path(os.environ.get(FLEET_FILE_ENV, "").strip() or DEFAULT_FLEET_FILE)


def _drift_table(plan: fleet_sync.Plan) -> str:
    rows = [(n.name, "not registered", "") for n in plan.added]
    rows += [(n, "differs", ", ".join(c)) for n, c in sorted(plan.changed.items())]
    rows += [(n, "no longer declared", "") for n in plan.removed]
    if not rows:
        return "The registry matches the file."
    lines = ["| agent | drift | fields |", "|---|---|---|"]
    lines += [f"| {escape_md(a, limit=200)} | {b} | {escape_md(c, limit=300)} |" for a, b, c in rows[:LISTED]]
    if len(rows) > LISTED:
        lines.append(f"\n… and {len(rows) - LISTED} more (`agents-pipeline fleet plan FILE`).")
    return "\n".join(lines)


def evaluate(postgres: PostgresResource, path: Path | None = None) -> tuple[dict, dg.AssetCheckEvaluation]:
    """Reads the file and compares; every problem ends as a failed (warning) check, never a raise."""
    path = path or fleet_file_path()
    meta: dict[str, object] = {"fleet_file": str(path)}
    if not path.exists():
        description = (f"no fleet file at {path} ({FLEET_FILE_ENV}): nothing to compare, the registry is "
                       "managed by hand")
        return meta, _check(True, description, {"fleet_file_present": False})
    try:
        declared = fleet_file.load(path)
        with postgres.begin() as conn:
            cur = conn.connection.cursor()
            try:
                plan = fleet_sync.plan(cur, declared)
            finally:
                cur.close()
    except AgentsPipelineError as exc:
        meta["problem"] = str(exc)
        return meta, _check(False, f"cannot compare: {escape_md(str(exc), limit=400)}", {"fleet_file_present": True})
    meta.update({"agents_declared": len(declared.agents), "agents_not_registered": len(plan.added),
                 "agents_differing": len(plan.changed), "agents_no_longer_declared": len(plan.removed),
                 "agents_unmanaged": len(plan.unmanaged), "drift": dg.MetadataValue.md(_drift_table(plan))})
    drift = len(plan.added) + len(plan.changed) + len(plan.removed)
    description = (f"{drift} agent(s) drifted from {path}: run `agents-pipeline fleet plan {path}`" if drift
                   else f"the registry matches {path} ({len(declared.agents)} agents)")
    return meta, _check(not drift, description, {"drifted_agents": drift, "fleet_file_present": True})


def _check(passed: bool, description: str, metadata: dict) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(asset_key=ASSET_KEY, check_name=CHECK_NAME, passed=passed,
                                   severity=dg.AssetCheckSeverity.WARN, description=description,
                                   metadata=metadata, blocking=False)


@dg.asset(
    key=ASSET_KEY,
    group_name="coordination",
    kinds={"postgres", "yaml"},
    owners=["team:agents-platform"],
    description=f"The fleet declared as code ({FLEET_FILE_ENV}, default {DEFAULT_FLEET_FILE}) against the agent "
                "registry: what is not registered, what differs, what is no longer declared.",
    check_specs=[dg.AssetCheckSpec(CHECK_NAME, asset=ASSET_KEY,
                                   description="the registry matches the fleet file (drift is a warning); passes "
                                               "when there is no fleet file")],
    code_version="1",
)
def fleet_config(postgres: PostgresResource) -> dg.MaterializeResult:
    metadata, e = evaluate(postgres)
    return dg.MaterializeResult(metadata=metadata, check_results=[dg.AssetCheckResult(
        check_name=e.check_name, passed=e.passed, severity=e.severity, description=e.description,
        metadata=e.metadata)])
