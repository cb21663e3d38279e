"""Backdated history for the demo fleet, so that a new install's UI has weeks of data at once.

Without a past, daily and hourly partitions have nothing to roll up, archival has no expired
day and the plots have one point. The seed writes, per demo agent, weeks of heartbeats with
realistic outages, the status changes and (resolved) alerts those outages caused, performance
samples for each agent and the host, and LLM conversations across days.

Everything is set-based (``generate_series``), partitions are created first in their own short
transaction (partition DDL takes locks that would stall live writers if held for the whole
seed), and the rows go in one transaction that also advances a marker in
``fleet.system_config``: a re-run seeds only the time after the previous seed, so running it
twice never duplicates a row, and running it again a week later fills that week.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import ValidationError
from agents_pipeline.demo.profiles import DEMO_AGENT_TYPE, MODELS, fleet

MARKER_KEY = "demo.seeded_until"
OUTAGE_PERCENT = 3
"""Share of agent-hours with an outage: its first 40 minutes have no heartbeats."""

# Whether an agent is in an outage at a time: deterministic, so heartbeats, samples,
# conversations, status changes and alerts all agree on when each outage was.
_OUTAGE_FUNCTION = """
CREATE FUNCTION pg_temp.seed_in_outage(p_name text, p_at timestamptz, p_percent integer, p_whole_hour boolean)
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT abs(hashtext(p_name || to_char(p_at AT TIME ZONE 'UTC', 'YYYYMMDDHH24'))) % 100 < p_percent
           AND (p_whole_hour OR extract(minute FROM p_at AT TIME ZONE 'UTC') < 40)
$$"""


@dataclass(frozen=True)
class SeedPlan:
    """What to seed: ``days`` back from ``now`` (UTC), at the given spacing per series."""

    agents: int = 6
    days: int = 40
    heartbeat_every_s: int = 60
    sample_every_s: int = 300
    conversation_every_s: int = 600
    host: str | None = None

    def validate(self) -> None:
        if not 1 <= self.days <= 400:
            raise ValidationError(f"days must be between 1 and 400, got {self.days}")
        for field, value in (("heartbeat_every_s", self.heartbeat_every_s), ("sample_every_s", self.sample_every_s),
                             ("conversation_every_s", self.conversation_every_s)):
            if value < 10:
                raise ValidationError(f"{field} must be at least 10 seconds, got {value}")


def _create_partitions(db: Database, first: datetime, last: datetime) -> int:
    def work(cur):
        cur.execute("SET LOCAL lock_timeout = '5s'")
        made = 0
        for table in ("heartbeats", "perf_samples"):
            cur.execute("SELECT fleet.ensure_partitions(%s, %s, %s)", (table, first.date(), last.date() + timedelta(days=7)))
            made += cur.fetchone()[0]
        return made

    return db.transaction(work)


_AGENTS = """
INSERT INTO fleet.agents (name, agent_type, period, grace, config, created_at, status_since)
SELECT n, %(type)s, make_interval(secs => 10), make_interval(secs => 5),
       jsonb_build_object('demo', true, 'profile', p), %(start)s, %(start)s
FROM unnest(%(names)s::text[], %(profiles)s::text[]) AS x(n, p)
ON CONFLICT (name) DO NOTHING"""

_HEARTBEATS = """
INSERT INTO fleet.heartbeats (agent_id, received_at, sent_at, kind, message, payload)
SELECT a.agent_id, t, t - make_interval(secs => random() * 0.05),
       CASE WHEN random() < 0.004 THEN 'fail' ELSE 'ok' END, NULL, '{"seed": true}'::jsonb
FROM fleet.agents a
CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
                           make_interval(secs => %(every)s)) AS t
WHERE a.name = ANY (%(names)s) AND NOT pg_temp.seed_in_outage(a.name, t, %(pct)s, false)"""

# Each outage hour: down at the deadline it passed (start + period + grace), up when the
# heartbeats resumed; with a resolved agent_down alert spanning it.
_OUTAGES = """
CREATE TEMP TABLE seed_outages ON COMMIT DROP AS
SELECT a.agent_id, a.name, t + a.period + a.grace AS down_at, t + interval '40 minutes' AS up_at
FROM fleet.agents a
CROSS JOIN generate_series(date_trunc('hour', %(start)s::timestamptz) + interval '1 hour',
                           %(end)s::timestamptz - interval '1 hour', interval '1 hour') AS t
WHERE a.name = ANY (%(names)s) AND pg_temp.seed_in_outage(a.name, t, %(pct)s, true)"""

_STATUS = """
INSERT INTO fleet.status_changes (agent_id, from_status, to_status, changed_at, noticed_at, reason, message)
SELECT agent_id, s.from_status, s.to_status, s.at, s.at + interval '3 seconds', s.reason, s.message
FROM seed_outages o
CROSS JOIN LATERAL (VALUES
    ('up', 'down', o.down_at, 'missed heartbeats', 'no heartbeat within period + grace'),
    ('down', 'up', o.up_at, 'heartbeat', 'heartbeats resumed')) AS s(from_status, to_status, at, reason, message)"""

_ALERTS = """
INSERT INTO fleet.alerts (alert_key, kind, severity, agent_id, subject, message, details, opened_at,
                          last_notified_at, resolved_at)
SELECT 'agent_down:' || agent_id, 'agent_down', 'warning', agent_id, name || ' is down',
       'no heartbeat within period + grace', '{"seed": true}'::jsonb, down_at, down_at, up_at
FROM seed_outages"""

_SAMPLES = """
INSERT INTO fleet.perf_samples (sampled_at, host, agent_id, metric, value, source)
SELECT t, %(host)s, a.agent_id, m.metric,
       CASE m.metric
           WHEN 'cpu_percent' THEN greatest(0, c.cpu * (1 + 0.4 * sin(extract(epoch FROM t) / 13751)) + random() * 4)
           WHEN 'rss_bytes' THEN (120 + 40 * random() + (extract(epoch FROM t) / 3600)::bigint %% 24) * 1048576
           WHEN 'threads' THEN 4 + floor(random() * 4)
           ELSE 18 + floor(random() * 20)
       END, 'sampler'
FROM fleet.agents a
JOIN unnest(%(names)s::text[], %(cpu)s::float8[]) AS c(name, cpu) ON c.name = a.name
CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
                           make_interval(secs => %(every)s)) AS t
CROSS JOIN (VALUES ('cpu_percent'), ('rss_bytes'), ('threads'), ('fds')) AS m(metric)
WHERE NOT pg_temp.seed_in_outage(a.name, t, %(pct)s, false)
UNION ALL
SELECT t, %(host)s, NULL, m.metric,
       CASE m.metric
           WHEN 'cpu_percent' THEN 15 + 10 * sin(extract(epoch FROM t) / 13751) + random() * 10
           WHEN 'memory_percent' THEN 40 + random() * 8
           ELSE 0.5 + random()
       END, 'sampler'
FROM generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
                     make_interval(secs => %(every)s)) AS t
CROSS JOIN (VALUES ('cpu_percent'), ('memory_percent'), ('load1')) AS m(metric)"""

# Seeded conversations are marked as already sent: fake history must never reach a real
# LangSmith project. Run ids are deterministic, so ON CONFLICT makes a retry harmless.
_CONVERSATIONS = """
INSERT INTO fleet.llm_conversations (conversation_id, agent_id, run_id, model, prompt, response,
    prompt_tokens, completion_tokens, total_tokens, cost, latency_ms, error, created_at, metadata,
    langsmith_sent_at)
SELECT a.name || ':seed:' || to_char(t AT TIME ZONE 'UTC', 'YYYYMMDDHH24MISS'), a.agent_id,
       md5('demo-seed' || a.name || t::text)::uuid, m.model,
       'You are a background agent. Task: routine ' || a.name || ' work.',
       CASE WHEN x.failed THEN NULL ELSE 'Done. Findings follow.' END,
       x.pt, x.ct, x.pt + x.ct, round(((x.pt * m.pin + x.ct * m.pout) / 1e6)::numeric, 6),
       round((exp(6.5 + 0.6 * x.z))::numeric, 1)::float8,
       CASE WHEN x.failed THEN 'RateLimitError: 429 Too Many Requests' END,
       t, '{"demo": true, "seed": true}'::jsonb, t
FROM fleet.agents a
CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz - interval '1 microsecond',
                           make_interval(secs => %(every)s)) AS t
CROSS JOIN LATERAL (SELECT 200 + floor(random() * 3800)::int AS pt, random() < 0.04 AS failed,
                           (random() + random() + random() - 1.5) * 2 AS z, floor(random() * %(nmodels)s)::int AS mi,
                           t AS correlated) AS r
CROSS JOIN LATERAL (SELECT r.pt, CASE WHEN r.failed THEN 0 ELSE 50 + floor(random() * 1150)::int END AS ct,
                           r.failed, r.z, r.mi) AS x
JOIN unnest(%(models)s::text[], %(pin)s::float8[], %(pout)s::float8[]) WITH ORDINALITY
     AS m(model, pin, pout, i) ON m.i = x.mi + 1
WHERE a.name = ANY (%(names)s) AND NOT pg_temp.seed_in_outage(a.name, t, %(pct)s, false)
ON CONFLICT (run_id) DO NOTHING"""

_KEEP_AGENTS_CURRENT = """
UPDATE fleet.agents a
SET last_seen = h.last, last_sent_at = h.last, last_kind = 'ok', heartbeat_count = a.heartbeat_count + h.n,
    status = CASE WHEN a.status = 'new' THEN 'up' ELSE a.status END,
    status_since = CASE WHEN a.status = 'new' THEN h.last ELSE a.status_since END, updated_at = now()
FROM (SELECT agent_id, max(received_at) AS last, count(*) AS n FROM fleet.heartbeats
      WHERE received_at >= %(start)s AND received_at < %(end)s AND payload @> '{"seed": true}'
      GROUP BY agent_id) h
WHERE a.agent_id = h.agent_id AND (a.last_seen IS NULL OR a.last_seen < h.last)"""

_HELP = """
INSERT INTO fleet.help_requests (agent_id, requested_by, question, context, created_at)
SELECT a.agent_id, a.name, q, '{"demo": true}'::jsonb, %(end)s
FROM fleet.agents a, unnest(%(questions)s::text[]) WITH ORDINALITY AS x(q, i)
WHERE a.name = %(asker)s"""


def seed_history(db: Database, plan: SeedPlan, *, now: datetime | None = None) -> dict[str, int]:
    """Seeds [max(now - days, previous seed's end), now rounded down to the minute); returns
    the rows written per table (all zero when there is nothing new to seed)."""
    plan.validate()
    end = (now or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
    members = fleet(plan.agents)
    names = [n for n, _ in members]
    host = plan.host or socket.gethostname()
    _create_partitions(db, end - timedelta(days=plan.days), end)

    def work(cur) -> dict[str, int]:
        cur.execute("SET LOCAL lock_timeout = '5s'")
        cur.execute("INSERT INTO fleet.system_config (key, value, description) VALUES (%s, 'null', %s) "
                    "ON CONFLICT (key) DO NOTHING", (MARKER_KEY, "end of the demo history written by demo-seed"))
        cur.execute("SELECT value #>> '{}' FROM fleet.system_config WHERE key = %s FOR UPDATE", (MARKER_KEY,))
        previous = cur.fetchone()[0]
        start = end - timedelta(days=plan.days)
        first_seed = previous is None
        if previous is not None:
            start = max(start, datetime.fromisoformat(previous))
        counts = {"heartbeats": 0, "status_changes": 0, "alerts": 0, "perf_samples": 0,
                  "llm_conversations": 0, "help_requests": 0}
        if start >= end:
            return counts
        base = {"start": start, "end": end, "names": names, "pct": OUTAGE_PERCENT}
        cur.execute("DROP FUNCTION IF EXISTS pg_temp.seed_in_outage(text, timestamptz, integer, boolean)")
        cur.execute(_OUTAGE_FUNCTION)
        cur.execute(_AGENTS, {**base, "type": DEMO_AGENT_TYPE, "profiles": [p.name for _, p in members]})
        cur.execute(_HEARTBEATS, {**base, "every": plan.heartbeat_every_s})
        counts["heartbeats"] = cur.rowcount
        cur.execute(_OUTAGES, base)
        cur.execute(_STATUS)
        counts["status_changes"] = cur.rowcount
        cur.execute(_ALERTS)
        counts["alerts"] = cur.rowcount
        cpu = [round(p.cpu_share * 100, 1) for _, p in members]
        cur.execute(_SAMPLES,
                    {**base, "every": plan.sample_every_s, "host": host, "cpu": cpu})
        counts["perf_samples"] = cur.rowcount
        cur.execute(_CONVERSATIONS, {
            **base, "every": plan.conversation_every_s, "nmodels": len(MODELS),
            "models": [m[0] for m in MODELS], "pin": [m[1] for m in MODELS], "pout": [m[2] for m in MODELS]})
        counts["llm_conversations"] = cur.rowcount
        cur.execute(_KEEP_AGENTS_CURRENT, base)
        if first_seed:
            cur.execute(_HELP, {**base, "asker": names[0], "questions": [
                "What does the grace period do?", f"Why is {names[-1]} down?",
                "How do I restore archived heartbeats?"]})
            counts["help_requests"] = cur.rowcount
        cur.execute("UPDATE fleet.system_config SET value = to_jsonb(%s::text), updated_at = now() WHERE key = %s",
                    (end.isoformat(), MARKER_KEY))
        return counts

    return db.transaction(work)
