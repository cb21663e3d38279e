"""Live facts about the agents a question names: the part of an answer the docs cannot give.

Agents are found by name in the question text (whole words, longest name first) or carried by
the request; an agent's own request gets its own facts only (request_store.facts_scope). For
each: its status and since when, recent status changes, open alerts, the latest performance
rollup and recent LLM errors, each fact tagged with the table and row it came from so that the
answer can cite it. Every query is indexed and bounded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents_pipeline.core.connection import Database

MAX_AGENTS = 5
HELP_AGENT = "agents-pipeline:help"


@dataclass
class Fact:
    """One statement about the live state, and where it came from."""

    text: str
    table: str
    row: str          # e.g. "agent_id=3", "alert_id=12"

    @property
    def source(self) -> dict[str, str]:
        return {"type": "table", "table": self.table, "row": self.row}


@dataclass
class AgentFacts:
    agent_id: int
    name: str
    status: str
    status_since: datetime
    row: dict[str, Any]
    facts: list[Fact] = field(default_factory=list)


def named_agents(db: Database, question: str, extra: Iterable[str] = ()) -> list[tuple[int, str]]:
    """(agent_id, name) of agents named in ``question`` as whole words, plus ``extra`` names;
    at most MAX_AGENTS, the request's own first. A name inside a longer matched name (``api``
    in ``api-gateway``) does not count twice."""
    lowered = question.lower()
    extra = [e for e in extra if e]

    def work(cur):
        cur.execute(
            """SELECT agent_id, name FROM fleet.agents
               WHERE name = ANY(%s) OR (length(name) >= 2 AND strpos(%s, lower(name)) > 0)""",
            (list(extra), lowered))
        return cur.fetchall()

    rows = sorted(db.transaction(work), key=lambda r: -len(r[1]))
    carried = [(r[0], r[1]) for r in rows if r[1] in extra]
    taken: list[tuple[int, int]] = []
    found: list[tuple[int, str]] = []
    for agent_id, name in rows:
        if name == HELP_AGENT or name in extra:
            continue
        for match in re.finditer(r"(?<![\w\-.:])" + re.escape(name.lower()) + r"(?![\w\-:])", lowered):
            span = match.span()
            if not any(s <= span[0] and span[1] <= e for s, e in taken):
                taken.append(span)
                found.append((agent_id, name))
                break
    found.sort(key=lambda a: lowered.find(a[1].lower()))
    return (carried + found)[:MAX_AGENTS]


def agents_by_id(db: Database, ids: Iterable[int]) -> list[tuple[int, str]]:
    """(agent_id, name) of the given agents, nothing else: an agent's request looks up no
    other agent, not even to learn whether a name it wrote exists."""
    wanted = sorted(set(ids))

    def work(cur):
        cur.execute("SELECT agent_id, name FROM fleet.agents WHERE agent_id = ANY(%s) ORDER BY agent_id", (wanted,))
        return [(r[0], r[1]) for r in cur.fetchall()]

    return db.transaction(work)[:MAX_AGENTS] if wanted else []


def _utc(ts: datetime | None) -> str:
    if ts is None:
        return "never"
    return ts.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return ""
    secs = max(0.0, (now - ts).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if secs >= size:
            return f" ({secs / size:.0f} {unit} ago)"
    return f" ({secs:.0f} s ago)"


_FACT_QUERIES = {
    "agents": """SELECT agent_id, name, status, status_since, status_message, paused, silenced_until,
                        extract(epoch FROM period)::float AS period_s, extract(epoch FROM grace)::float AS grace_s,
                        last_seen, last_kind, last_message, host, now() AS db_now
                 FROM fleet.agents WHERE agent_id = ANY(%(ids)s)""",
    "changes": """SELECT * FROM (
                      SELECT change_id, agent_id, from_status, to_status, changed_at, reason, message,
                             row_number() OVER (PARTITION BY agent_id ORDER BY changed_at DESC, change_id DESC) AS rn
                      FROM fleet.status_changes WHERE agent_id = ANY(%(ids)s)
                        AND changed_at > now() - interval '7 days') c
                  WHERE rn <= 5 ORDER BY agent_id, changed_at DESC""",
    "alerts": """SELECT alert_id, agent_id, kind, severity, subject, opened_at, last_notified_at
                 FROM fleet.alerts WHERE agent_id = ANY(%(ids)s) AND resolved_at IS NULL
                 ORDER BY opened_at DESC LIMIT 20""",
    "perf": """SELECT DISTINCT ON (agent_id, metric) agent_id, metric, hour, samples, mean_value, p95_value, max_value
               FROM fleet.perf_rollups WHERE agent_id = ANY(%(ids)s) AND hour > now() - interval '2 days'
               ORDER BY agent_id, metric, hour DESC""",
    "runs": """SELECT * FROM (
                   SELECT run_id::text AS id, agent_id, model, start_time AS at, error,
                          row_number() OVER (PARTITION BY agent_id ORDER BY start_time DESC) AS rn
                   FROM fleet.llm_runs WHERE agent_id = ANY(%(ids)s) AND error IS NOT NULL
                     AND start_time > now() - interval '7 days') r WHERE rn <= 3""",
    "conversations": """SELECT * FROM (
                   SELECT conversation_pk::text AS id, agent_id, model, created_at AS at, error,
                          row_number() OVER (PARTITION BY agent_id ORDER BY created_at DESC) AS rn
                   FROM fleet.llm_conversations WHERE agent_id = ANY(%(ids)s) AND error IS NOT NULL
                     AND created_at > now() - interval '7 days') c WHERE rn <= 3""",
}


def agent_facts(db: Database, agents: list[tuple[int, str]]) -> list[AgentFacts]:
    """The live facts of each agent, in the order given, read in one transaction."""
    if not agents:
        return []
    ids = [a[0] for a in agents]

    def work(cur):
        out = {}
        for key, sql in _FACT_QUERIES.items():
            cur.execute(sql, {"ids": ids})
            out[key] = [dict(r) for r in cur.fetchall()]
        return out

    data = db.transaction(work)
    by_id = {r["agent_id"]: r for r in data["agents"]}
    result = []
    for agent_id, _ in agents:
        row = by_id.get(agent_id)
        if row is None:  # deleted between the two reads
            continue
        result.append(_describe(row, data))
    return result


def _describe(row: dict[str, Any], data: dict[str, list[dict[str, Any]]]) -> AgentFacts:
    aid, name, now = row["agent_id"], row["name"], row["db_now"]
    ref = f"agent_id={aid}"
    facts = AgentFacts(aid, name, row["status"], row["status_since"], row)
    status = f"{name} is {row['status'].upper()} since {_utc(row['status_since'])}{_ago(row['status_since'], now)}"
    if row["status_message"]:
        status += f": {row['status_message']}"
    facts.facts.append(Fact(status + ".", "fleet.agents", ref))
    detail = (f"Period {row['period_s']:g} s, grace {row['grace_s']:g} s; last heartbeat "
              f"{_utc(row['last_seen'])}{_ago(row['last_seen'], now)}")
    if row["last_kind"] and row["last_seen"]:
        detail += f", kind {row['last_kind']}" + (f" ({row['last_message']})" if row["last_message"] else "")
    if row["paused"]:
        detail += "; paused by an operator"
    if row["silenced_until"] and row["silenced_until"] > now:
        detail += f"; alerts silenced until {_utc(row['silenced_until'])}"
    facts.facts.append(Fact(detail + ".", "fleet.agents", ref))
    for c in (c for c in data["changes"] if c["agent_id"] == aid):
        why = c["reason"] or c["message"]
        facts.facts.append(Fact(
            f"Status changed {c['from_status']} -> {c['to_status']} at {_utc(c['changed_at'])}"
            + (f" ({why})" if why else "") + ".", "fleet.status_changes", f"change_id={c['change_id']}"))
    for a in (a for a in data["alerts"] if a["agent_id"] == aid):
        facts.facts.append(Fact(
            f"Open {a['severity']} alert {a['kind']} since {_utc(a['opened_at'])}: {a['subject']}"
            + ("" if a["last_notified_at"] else " (no notification sent yet)") + ".",
            "fleet.alerts", f"alert_id={a['alert_id']}"))
    perf = [p for p in data["perf"] if p["agent_id"] == aid]
    if perf:
        hour = max(p["hour"] for p in perf)
        parts = [f"{p['metric']} mean {p['mean_value']:.4g} p95 {p['p95_value']:.4g} max {p['max_value']:.4g}"
                 for p in perf if p["hour"] == hour and p["mean_value"] is not None][:6]
        if parts:
            facts.facts.append(Fact(f"Performance in the hour from {_utc(hour)}: " + "; ".join(parts) + ".",
                                    "fleet.perf_rollups", f"agent_id={aid}, hour={hour.isoformat()}"))
    for key, table in (("runs", "fleet.llm_runs"), ("conversations", "fleet.llm_conversations")):
        for e in (e for e in data[key] if e["agent_id"] == aid):
            column = "run_id" if key == "runs" else "conversation_pk"
            facts.facts.append(Fact(
                f"LLM error at {_utc(e['at'])}" + (f" ({e['model']})" if e["model"] else "")
                + f": {str(e['error'])[:300]}.", table, f"{column}={e['id']}"))
    return facts


def fleet_overview(db: Database) -> list[Fact]:
    """Counts per status and the agents that are not up: for questions about the whole fleet."""
    def work(cur):
        cur.execute("SELECT status, count(*) FROM fleet.agents WHERE name <> %s GROUP BY status ORDER BY status",
                    (HELP_AGENT,))
        counts = cur.fetchall()
        cur.execute("""SELECT agent_id, name, status, status_since FROM fleet.agents
                       WHERE status IN ('down', 'late') AND name <> %s ORDER BY status_since LIMIT 10""",
                    (HELP_AGENT,))
        return counts, cur.fetchall()

    counts, troubled = db.transaction(work)
    if not counts:
        return [Fact("No agents are registered.", "fleet.agents", "all rows")]
    facts = [Fact("Fleet: " + ", ".join(f"{n} {s}" for s, n in counts) + ".", "fleet.agents", "count by status")]
    for aid, name, status, since in troubled:
        facts.append(Fact(f"{name} is {status.upper()} since {_utc(since)}.", "fleet.agents", f"agent_id={aid}"))
    return facts
