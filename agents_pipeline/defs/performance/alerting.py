"""Judging samples against the thresholds, and raising and resolving alerts with a duration.

A verdict per (rule, subject) each sample: breached, clear, or unknown (a CPU figure missing
because this sample only set a baseline). Breached keys keep a row in
``fleet.perf_threshold_state`` with the time the breach began; the alert opens through
``agents_pipeline.defs.alerts.store`` once ``at - breach_since >= for_s``, and resolves on the
first clear verdict. Unknown leaves everything as it was, so a restarted sampler neither
resolves nor re-times an alert. Everything runs in the caller's transaction with the samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from agents_pipeline.defs.alerts.store import open_alert, resolve_alert
from agents_pipeline.defs.performance.thresholds import Setting, is_custom, rule_for


@dataclass(frozen=True)
class Verdict:
    key: str
    rule: str
    setting: Setting
    breached: bool | None          # None: unknown this time (state left as it is)
    value: float | None
    at: datetime
    subject: str                   # who: "agent 'crawler'" or "host web1 /var"
    agent_id: int | None = None
    notify: bool = True            # False while the agent is silenced


@dataclass
class Outcome:
    opened: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)   # breached, duration not reached yet


def agent_key(rule: str, agent_id: int) -> str:
    return f"perf:{rule}:agent:{agent_id}"


def host_key(rule: str, host: str, suffix: str | None = None) -> str:
    return f"perf:{rule}:host:{host}" + (f":{suffix}" if suffix else "")


def judge(setting: Setting, value: float | None, *, rule: str) -> bool | None:
    """True past the limit, False within it (or the rule off), None when there is no value."""
    if not setting.enabled:
        return False
    if rule == "process_missing":
        return None if value is None else value == 0.0
    if setting.above is None:
        return False
    return None if value is None else value > setting.above


def _shown(rule_name: str, value: float | None) -> str:
    if value is None:
        return "?"
    if rule_name == "rss_bytes":
        return f"{value / 1048576:,.0f} MiB"
    if is_custom(rule_name):
        return f"{value:,.6g}"
    return f"{value:,.1f} %"


def _describe(v: Verdict, rule_name: str) -> tuple[str, str]:
    rule, s = rule_for(rule_name), v.setting
    held = f" for {s.for_s:g} s" if s.for_s else ""
    if rule_name == "process_missing":
        return f"{v.subject}: process not found{held}", "The sampler found no process for this agent."
    value, limit = _shown(rule_name, v.value), _shown(rule_name, s.above)
    return (f"{v.subject}: {rule.what} above {limit}{held} (now {value})",
            f"{rule.what} has stayed above {limit} since the breach began; latest {value}.")


def evaluate(conn: sa.Connection, verdicts: list[Verdict], *, evaluator: str, now: datetime) -> Outcome:
    """Applies one round of verdicts. Keys this evaluator held but did not judge now (a
    filesystem unmounted, an agent moved to another host) count as clear."""
    out = Outcome()
    judged = {v.key: v for v in verdicts}
    held = {r.alert_key: r for r in conn.execute(sa.text(
        "SELECT alert_key, breach_since, rule FROM fleet.perf_threshold_state "
        "WHERE evaluator = :ev OR alert_key = ANY(:keys) FOR UPDATE"),
        {"ev": evaluator, "keys": list(judged)})}
    keys = list(set(judged) | set(held))
    open_keys = {r.alert_key for r in conn.execute(sa.text(
        "SELECT alert_key FROM fleet.alerts WHERE resolved_at IS NULL AND alert_key = ANY(:keys)"),
        {"keys": keys})}
    upserts, clears = [], []
    for key in keys:
        v = judged.get(key)
        if v is not None and v.breached is None:
            continue
        if v is None or not v.breached:
            if key in held:
                clears.append(key)
            if key in open_keys:
                resolve_alert(conn, key=key, resolved_at=v.at if v else now,
                              message="back within its threshold" if v else "no longer monitored here",
                              notify=v.notify if v else True)
                out.resolved.append(key)
            continue
        since = held[key].breach_since if key in held else v.at
        upserts.append({"key": key, "rule": v.rule, "ev": evaluator, "agent": v.agent_id,
                        "since": since, "value": v.value, "at": v.at})
        if (v.at - since).total_seconds() >= v.setting.for_s:
            if key not in open_keys:
                subject, message = _describe(v, v.rule)
                opened = open_alert(
                    conn, key=key, kind=rule_for(v.rule).kind, subject=subject, severity=v.setting.severity,
                    agent_id=v.agent_id, message=message, opened_at=v.at, notify=v.notify,
                    details={"rule": v.rule, "value": v.value, "above": v.setting.above,
                             "for_s": v.setting.for_s, "breach_since": since.isoformat(),
                             "evaluator": evaluator})
                if opened is not None:
                    out.opened.append(key)
        else:
            out.pending.append(key)
    if clears:
        conn.execute(sa.text("DELETE FROM fleet.perf_threshold_state WHERE alert_key = ANY(:keys)"),
                     {"keys": clears})
    if upserts:
        conn.execute(sa.text("""
            INSERT INTO fleet.perf_threshold_state (alert_key, rule, evaluator, agent_id, breach_since, last_value, last_at)
            VALUES (:key, :rule, :ev, :agent, :since, :value, :at)
            ON CONFLICT (alert_key) DO UPDATE
            SET last_value = excluded.last_value, last_at = excluded.last_at, evaluator = excluded.evaluator"""),
            upserts)
    return out
