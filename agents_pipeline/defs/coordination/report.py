"""The task queue report as the UI shows it: numbers to plot (totals, and per kind for the busiest
kinds), a table per kind, and the two asset checks. Kinds are labels (letters, digits, _ . : / -),
so they are safe in metadata keys; agent text (errors) goes only into table cells, which render
as text, and into check descriptions escaped for markdown."""

from __future__ import annotations

import dagster as dg

from agents_pipeline.defs.coordination.queue import LISTED, STUCK_AFTER_S, QueueReport
from agents_pipeline.platform.markdown import escape_md

ASSET_KEY = dg.AssetKey("task_queue")
STUCK_CHECK = "no_tasks_stuck_past_lease"
DEAD_CHECK = "no_dead_letters"
CHECKS = {
    STUCK_CHECK: f"Warns when a claimed task's lease ran out more than {STUCK_AFTER_S} s ago and no agent has "
                 "claimed since (an expired lease is released by the next claim): nobody able to do that kind is "
                 "working.",
    DEAD_CHECK: "Warns while dead letters (tasks whose attempts ran out) wait; requeue or drop them with "
                "dead_letter_job.",
}


def _table(columns: list[tuple[str, str]], rows: list[dict]) -> dg.TableMetadataValue:
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in rows],
                                  schema=dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in columns]))


def metadata(report: QueueReport) -> dict[str, object]:
    per_min = 60.0 / report.window_s
    meta: dict[str, object] = {
        "tasks_ready": report.total("depth"),
        "tasks_scheduled": report.total("scheduled"),
        "tasks_claimed": report.total("claimed"),
        "oldest_ready_age_s": round(report.oldest_ready_age_s, 1),
        "throughput_per_min": round(report.total("done") * per_min, 2),
        "failures": report.total("failures"),
        "dead_letters": report.total("dead"),
        "tasks_stuck": report.total("stuck"),
        "kinds": len(report.kinds),
    }
    busiest = sorted(report.kinds, key=lambda k: (-k.activity, k.kind))[:LISTED]
    for k in sorted(busiest, key=lambda k: k.kind):
        meta[f"depth:{k.kind}"] = k.depth
        meta[f"oldest_ready_age_s:{k.kind}"] = round(k.oldest_ready_age_s, 1)
        meta[f"throughput_per_min:{k.kind}"] = round(k.done * per_min, 2)
        meta[f"failures:{k.kind}"] = k.failures
    window = f"{report.window_s / 60:g}m"
    meta["per_kind"] = _table(
        [("kind", "string"), ("ready", "int"), ("scheduled", "int"), ("oldest_ready_age_s", "float"),
         ("claimed", "int"), ("stuck", "int"), (f"done_{window}", "int"), (f"failures_{window}", "int"),
         ("dead", "int")],
        [{"kind": k.kind, "ready": k.depth, "scheduled": k.scheduled,
          "oldest_ready_age_s": round(k.oldest_ready_age_s, 1), "claimed": k.claimed, "stuck": k.stuck,
          f"done_{window}": k.done, f"failures_{window}": k.failures, "dead": k.dead} for k in report.kinds])
    if report.stuck:
        meta["stuck_tasks"] = _table(
            [("task_id", "int"), ("kind", "string"), ("holder", "string"), ("attempts", "int"), ("overdue_s", "float")],
            [{**r, "holder": r["holder"] or "", "overdue_s": round(r["overdue_s"], 1)} for r in report.stuck])
    if report.dead_letters:
        meta["dead_letter_tasks"] = _table(
            [("task_id", "int"), ("kind", "string"), ("attempts", "int"), ("last_holder", "string"),
             ("finished_at", "string"), ("last_error", "string")],
            [{"task_id": r["task_id"], "kind": r["kind"], "attempts": r["attempts"],
              "last_holder": r["last_holder"] or "",
              "finished_at": r["finished_at"].isoformat() if r["finished_at"] else "",
              "last_error": r["last_error"][:500]} for r in report.dead_letters])
    meta["tasks_released"] = report.released_total
    if report.released:
        # A task whose agent went down: its reason names that agent, now_with the one that took it.
        meta["released_tasks"] = _table(
            [("task_id", "int"), ("kind", "string"), ("state", "string"), ("now_with", "string"),
             ("attempts", "int"), ("released_at", "string"), ("reason", "string")],
            [{"task_id": r["task_id"], "kind": r["kind"], "state": r["state"], "now_with": r["now_with"] or "",
              "attempts": r["attempts"], "released_at": r["failed_at"].isoformat(),
              "reason": (r["reason"] or "")[:500]} for r in report.released])
    return meta


def _kinds(names: list[str]) -> str:
    shown = ", ".join(sorted(set(names))[:10])
    return escape_md(shown + (" ..." if len(set(names)) > 10 else ""))


def checks(report: QueueReport) -> list[dg.AssetCheckEvaluation]:
    stuck = report.total("stuck")
    dead = report.total("dead")
    return [
        dg.AssetCheckEvaluation(
            asset_key=ASSET_KEY, check_name=STUCK_CHECK, passed=stuck == 0, severity=dg.AssetCheckSeverity.WARN,
            description=(f"{stuck} task(s) past their lease by more than {STUCK_AFTER_S} s, of kind(s) "
                         f"{_kinds([k.kind for k in report.kinds if k.stuck])}" if stuck
                         else "no claimed task is past its lease"),
            metadata={"tasks_stuck": stuck}),
        dg.AssetCheckEvaluation(
            asset_key=ASSET_KEY, check_name=DEAD_CHECK, passed=dead == 0, severity=dg.AssetCheckSeverity.WARN,
            description=(f"{dead} dead letter(s) of kind(s) {_kinds([k.kind for k in report.kinds if k.dead])}: "
                         "requeue or drop them with dead_letter_job" if dead else "no dead letters"),
            metadata={"dead_letters": dead}),
    ]
