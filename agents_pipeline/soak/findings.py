"""What a soak found, in the seed's five phases: delivery, detection, accuracy, resources, storage.

Everything is computed from three independent records: the agents' ledgers (what was
acknowledged to them), the database (what was stored and alerted) and the webhook receiver
(what reached the channel, when). None of them trusts the others.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg2

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.soak import plan
from agents_pipeline.soak.harness import SoakRun
from agents_pipeline.soak.usage import HOST, UsageSample

# After a restored kill, its alert may still resolve up to a deadline plus an evaluation or two.
MATCH_SLACK_S = plan.PERIOD_S + plan.GRACE_S + 3 * plan.EVALUATION_S
PIPELINE_SLACK_S = 180.0    # a pipeline job's alert this soon after an infrastructure fault is its effect
DOWNTIME_TOLERANCE_S = 2.0
FLAT_RATIO = 1.05


@dataclass
class Ledger:
    acked: dict[str, float] = field(default_factory=dict)         # "agent soak:pid:seq" -> when
    acks_by_agent: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    refused: int = 0
    errors: int = 0


def read_ledgers(folder: Path) -> Ledger:
    out = Ledger()
    for path in sorted(folder.glob("*.tsv")):
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split("\t")
            if len(parts) < 4:
                continue      # a line cut by kill -9 mid-write: nothing acknowledged is lost by skipping it
            outcome, agent, message, at = parts[:4]
            if outcome == "ack":
                out.acked[f"{agent} {message}"] = float(at)
                out.acks_by_agent[agent].append(float(at))
            elif outcome == "refused":
                out.refused += 1
            else:
                out.errors += 1
    for times in out.acks_by_agent.values():
        times.sort()
    return out


@dataclass
class Stored:
    messages: Counter
    alerts: list[dict[str, Any]]
    per_bucket: list[tuple[float, int]]
    database_bytes: int
    heartbeat_bytes: int
    heartbeat_rows: int
    retention_days: int
    received: dict[str, list[float]] = field(default_factory=dict)   # agent -> its rows' receive times


def read_database(url: str, since: float, retention_days: int) -> Stored:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute("""SELECT a.name || ' ' || h.message FROM fleet.heartbeats h JOIN fleet.agents a USING (agent_id)
                           WHERE a.agent_type = 'soak' AND h.message LIKE 'soak:%%'""")
            messages = Counter(r[0] for r in cur.fetchall())
            cur.execute("""SELECT a.name, extract(epoch FROM h.received_at) FROM fleet.heartbeats h
                           JOIN fleet.agents a USING (agent_id) WHERE a.agent_type = 'soak' ORDER BY 1, 2""")
            received: dict[str, list[float]] = defaultdict(list)
            for name, at in cur.fetchall():
                received[name].append(float(at))
            cur.execute("""SELECT al.alert_id, al.kind, al.alert_key, a.name, extract(epoch FROM al.opened_at),
                                  extract(epoch FROM al.resolved_at), al.details
                           FROM fleet.alerts al LEFT JOIN fleet.agents a USING (agent_id)
                           WHERE al.opened_at >= to_timestamp(%s) ORDER BY al.opened_at""", (since,))
            alerts = [dict(zip(("alert_id", "kind", "key", "agent", "opened", "resolved", "details"), r, strict=True))
                      for r in cur.fetchall()]
            for a in alerts:
                a["opened"] = float(a["opened"])
                a["resolved"] = float(a["resolved"]) if a["resolved"] is not None else None
            cur.execute("""SELECT floor(extract(epoch FROM received_at) / 10) * 10, count(*) FROM fleet.heartbeats
                           WHERE message LIKE 'soak:%%' GROUP BY 1 ORDER BY 1""")
            buckets = [(float(t), n) for t, n in cur.fetchall()]
            cur.execute("""SELECT pg_database_size(current_database()),
                                  (SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0) FROM pg_inherits
                                   WHERE inhparent = 'fleet.heartbeats'::regclass),
                                  (SELECT count(*) FROM fleet.heartbeats)""")
            db_bytes, hb_bytes, hb_rows = cur.fetchone()
    finally:
        conn.close()
    return Stored(messages, alerts, buckets, int(db_bytes), int(hb_bytes), int(hb_rows), retention_days, dict(received))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def delivery(ledger: Ledger, stored: Stored) -> dict[str, Any]:
    lost = sorted(k for k in ledger.acked if stored.messages[k] == 0)
    return {"acknowledged": len(ledger.acked), "stored_of_acknowledged": len(ledger.acked) - len(lost),
            "lost": len(lost), "lost_examples": lost[:10],
            "duplicates": sum(1 for n in stored.messages.values() if n > 1),
            "refused_by_rate_limit": ledger.refused, "not_acknowledged": ledger.errors}


def detection_and_accuracy(run: SoakRun, ledger: Ledger, stored: Stored, notices: list[tuple[float, dict[str, Any]]],
                           samples: list[UsageSample] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    opened = [(t, p) for t, p in notices if p.get("event") == "opened"]
    deaths, latencies, missed, resolutions = [], [], [], []
    for fault in run.injected:
        if fault.kind != "agent_kill":
            continue
        for agent in fault.agents:
            arrival = next((t for t, p in opened if p.get("agent") == agent and p.get("kind") == "agent_down"
                            and t >= fault.at), None)
            deaths.append(agent)
            if arrival is None:
                missed.append(agent)
            else:
                latencies.append(arrival - fault.at)
    infra = [f.at for f in run.injected if f.kind in plan.INFRASTRUCTURE]
    false_alerts, expected = [], 0
    for alert in stored.alerts:
        agent, at = alert["agent"], alert["opened"]
        # The latest fault before the alert that could explain it: an agent killed twice in a
        # row (a kill, then the collapse) has two alerts, each of its own fault.
        cause = next((f for f in reversed(run.injected) if f.kind in ("agent_kill", "collapse")
                      and (agent in f.agents or (alert["key"] == "fleet_collapse" and f.kind == "collapse"))
                      and f.at <= at <= (f.restored_at or run.ended_at) + MATCH_SLACK_S), None)
        if cause is None and agent and agent.startswith("agents-pipeline:") \
                and any(0 <= at - t <= PIPELINE_SLACK_S for t in infra):
            expected += 1
            continue
        if cause is None and host_cpu_confirms(alert, list(samples)):
            expected += 1      # the machine really was that busy: a true alert, not a false one
            continue
        if cause is None:
            false_alerts.append({k: alert[k] for k in ("alert_id", "kind", "key", "agent")}
                                | {"opened_s": round(at - run.started_at, 1)})
            continue
        expected += 1
        if alert["kind"] != "agent_down":
            continue
        # The rows themselves when read (a heartbeat stored just before a kill -9 may never have
        # reached the ledger), else what the agent was told.
        acks = stored.received.get(agent) or ledger.acks_by_agent.get(agent, [])
        before = [t for t in acks if t <= cause.at]
        after = [t for t in acks if t >= (cause.restored_at or run.ended_at)]
        if alert["resolved"] is None or not before or not after:
            resolutions.append({"agent": agent, "resolved": alert["resolved"] is not None, "error_s": None})
            continue
        want = after[0] - (before[-1] + plan.PERIOD_S + plan.GRACE_S)
        got = alert["resolved"] - alert["opened"]
        resolutions.append({"agent": agent, "resolved": True, "downtime_s": round(got, 1),
                            "expected_s": round(want, 1), "error_s": round(got - want, 2)})
    collapse = [f for f in run.injected if f.kind == "collapse"]
    collapse_report = None
    if collapse:
        f = collapse[0]
        incidents = [a for a in stored.alerts if a["key"] == "fleet_collapse"]
        held = [p for t, p in opened if p.get("kind") == "agent_down" and p.get("agent") in f.agents and t >= f.at]
        collapse_report = {"agents_killed": len(f.agents), "incident_opened": bool(incidents),
                           "per_agent_notices_sent": len(held)}
    detection = {"deaths": len(deaths), "alerted": len(deaths) - len(missed), "missed": missed,
                 "latency_p50_s": _round(_percentile(latencies, 0.5)),
                 "latency_p95_s": _round(_percentile(latencies, 0.95)),
                 "latency_max_s": _round(max(latencies) if latencies else None), "collapse": collapse_report}
    bad = [r for r in resolutions if r["error_s"] is None or abs(r["error_s"]) > DOWNTIME_TOLERANCE_S]
    accuracy = {"alerts_opened": len(stored.alerts), "expected": expected, "false_alerts": false_alerts,
                "resolutions_checked": len(resolutions), "resolutions_wrong": bad,
                "downtime_error_max_s": _round(max((abs(r["error_s"]) for r in resolutions if r["error_s"] is not None),
                                                   default=None))}
    return detection, accuracy


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def group_of(component: str) -> str:
    return "agent hosts" if component.startswith("agents-") else component


def resources(samples: list[UsageSample], halfway: float | None = None) -> dict[str, Any]:
    """Per component: mean CPU, and memory at the end against memory at the soak's halfway point,
    for a process that was alive then and still is (the issue's definition of flat). A process
    restarted after the halfway point has no reading there: it is listed, with its own lifetime's
    halfway for information, and not judged."""
    out: dict[str, Any] = {}
    by_component: dict[str, list[UsageSample]] = defaultdict(list)
    for s in samples:
        if s.component != HOST:
            by_component[s.component].append(s)
    grouped: dict[str, dict[str, Any]] = {}
    for component, rows in sorted(by_component.items()):
        last_pid = rows[-1].pid
        life = [r for r in rows if r.pid == last_pid]
        judged = halfway is None or life[0].at <= halfway
        mid_time = halfway if halfway is not None and judged else (life[0].at + life[-1].at) / 2
        mid = min(life, key=lambda r: abs(r.at - mid_time))
        ratio = life[-1].rss_bytes / mid.rss_bytes if mid.rss_bytes else 1.0
        row = {"cpu_mean_percent": round(statistics.fmean(r.cpu_percent for r in rows), 2),
               "rss_end_mb": round(life[-1].rss_bytes / 2**20, 1), "rss_mid_mb": round(mid.rss_bytes / 2**20, 1),
               "end_to_mid": round(ratio, 3) if judged else None, "lived_s": round(life[-1].at - life[0].at),
               "judged": judged}
        group = group_of(component)
        if group == component:
            out[component] = row
        else:
            g = grouped.setdefault(group, {"hosts": 0, "cpu_mean_percent": 0.0, "worst_end_to_mid": 0.0,
                                           "rss_end_mb": 0.0, "judged": 0})
            g["hosts"] += 1
            g["cpu_mean_percent"] = round(g["cpu_mean_percent"] + row["cpu_mean_percent"], 2)
            g["rss_end_mb"] = round(g["rss_end_mb"] + row["rss_end_mb"], 1)
            if judged:
                g["judged"] += 1
                g["worst_end_to_mid"] = max(g["worst_end_to_mid"], row["end_to_mid"])
    out.update(grouped)
    flat = all((r.get("end_to_mid") or r.get("worst_end_to_mid") or 0) <= FLAT_RATIO for r in out.values()) \
        and any(r.get("judged") for r in out.values())
    machine = [s for s in samples if s.component == HOST]
    return {"components": out, "flat": flat,
            "host_cpu_mean_percent": _round(statistics.fmean(s.cpu_percent for s in machine)) if machine else None,
            "load_average_max": _round(max(s.rss_bytes for s in machine) / 1000) if machine else None}


def host_cpu_confirms(alert: dict[str, Any], samples: list[UsageSample]) -> bool:
    """A host CPU threshold alert is true when the harness's own reading of the machine agrees:
    its mean CPU from the breach's start to the alert is above the rule's threshold (less 5 points
    for the two readers' different sampling)."""
    details = alert.get("details") or {}
    if details.get("rule") != "host_cpu_percent" or "above" not in details or "breach_since" not in details:
        return False
    since = datetime.fromisoformat(details["breach_since"]).timestamp()
    readings = [s.cpu_percent for s in samples if s.component == HOST and since <= s.at <= alert["opened"]]
    return bool(readings) and statistics.fmean(readings) >= float(details["above"]) - 5.0


def storage(stored: Stored, run: SoakRun) -> dict[str, Any]:
    seconds = max(run.ended_at - run.started_at, 1.0)
    rows_per_day = stored.heartbeat_rows / seconds * 86400
    per_row = stored.heartbeat_bytes / stored.heartbeat_rows if stored.heartbeat_rows else 0
    return {"database_mb": round(stored.database_bytes / 2**20, 1),
            "heartbeat_rows": stored.heartbeat_rows, "heartbeat_mb": round(stored.heartbeat_bytes / 2**20, 1),
            "bytes_per_heartbeat": round(per_row), "retention_days": stored.retention_days,
            "projected_heartbeat_gb_at_retention": round(rows_per_day * stored.retention_days * per_row / 2**30, 2)}
