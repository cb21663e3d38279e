"""One performance sample of this host and its agents, stored and judged in one transaction.

``sample_once`` is what the Dagster sensor, the CLI and the benchmark call. It reads the
registry, locks this host's counter state, reads psutil, derives figures against the
previous counters, inserts the rows, keeps the new counters and applies the thresholds:
committed together, so a crash leaves either the whole sample or none of it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from agents_pipeline.defs.performance import store, thresholds
from agents_pipeline.defs.performance.alerting import Outcome, Verdict, agent_key, evaluate, host_key, judge
from agents_pipeline.defs.performance.collect import AgentReading, read_agents, read_host
from agents_pipeline.defs.performance.derive import Row, derive

HOST_ENV = "AGENTS_PIPELINE_PERF_HOST"
REMOTE_WINDOW = timedelta(minutes=10)


def this_host() -> str:
    """The name agents register under with ``--host`` to be sampled here."""
    return os.environ.get(HOST_ENV) or socket.gethostname()


@dataclass(frozen=True)
class AgentSummary:
    agent_id: int
    name: str
    found: bool
    processes: int
    cpu_percent: float | None
    rss_bytes: float | None
    problem: str | None


@dataclass
class SampleResult:
    host: str
    sampled_at: datetime
    skipped: str | None = None
    baseline: bool = False
    rows: int = 0
    sampler_cpu_ms: float = 0.0
    host_metrics: dict[str, float] = field(default_factory=dict)
    agents: list[AgentSummary] = field(default_factory=list)
    remote_agents: int = 0
    unlocated: list[str] = field(default_factory=list)
    alerts: Outcome = field(default_factory=Outcome)
    threshold_problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[AgentSummary]:
        return [a for a in self.agents if not a.found]


def _verdicts(host: str, now: datetime, rows: list[Row], readings: list[AgentReading],
              agents: dict[int, store.RegisteredAgent], remote: list[store.RegisteredAgent],
              remote_values: dict, eff: thresholds.Effective) -> list[Verdict]:
    values = {(aid, metric): value for aid, metric, value in rows}
    out: list[Verdict] = []
    for name in thresholds.HOST_RULES:
        rule, setting = thresholds.RULES[name], eff.fleet[name]
        if rule.metric.endswith(":"):
            for (aid, metric), value in values.items():
                if aid is None and metric.startswith(rule.metric):
                    mount = metric[len(rule.metric):]
                    out.append(Verdict(host_key(name, host, mount), name, setting, judge(setting, value, rule=name),
                                       value, now, f"host {host} {mount}"))
        else:
            value = values.get((None, rule.metric))
            out.append(Verdict(host_key(name, host), name, setting, judge(setting, value, rule=name),
                               value, now, f"host {host}"))
    for reading in readings:
        reg = agents[reading.target.agent_id]
        settings = eff.for_agent(reg.target.agent_id)
        notify = reg.silenced_until is None or reg.silenced_until <= now
        for name in thresholds.AGENT_RULES:
            value = values.get((reg.target.agent_id, thresholds.RULES[name].metric))
            verdict = judge(settings[name], value, rule=name)
            if name == "process_missing" and reg.paused:
                verdict = False           # a paused agent is stopped on purpose
            elif name != "process_missing" and not reading.found:
                verdict = False           # nothing running: only process_missing speaks
            out.append(Verdict(agent_key(name, reg.target.agent_id), name, settings[name], verdict, value, now,
                               f"agent {reg.target.name!r}", reg.target.agent_id, notify))
    for reg in remote:    # judged on what they report; never "process not found"
        settings = eff.for_agent(reg.target.agent_id)
        notify = reg.silenced_until is None or reg.silenced_until <= now
        for name in ("cpu_percent", "rss_bytes"):
            reported = remote_values.get((reg.target.agent_id, thresholds.RULES[name].metric))
            value, at = (reported[0], reported[1]) if reported else (None, now)
            verdict = judge(settings[name], value, rule=name) if reported else False
            out.append(Verdict(agent_key(name, reg.target.agent_id), name, settings[name], verdict, value, at,
                               f"agent {reg.target.name!r} on {reg.host}", reg.target.agent_id, notify))
    return out


def _custom_verdicts(conn: sa.Connection, now: datetime, agents: list[store.RegisteredAgent],
                     eff: thresholds.Effective) -> list[Verdict]:
    """Custom metrics (Agent.metric) against their ``custom:<metric>`` rules: the newest value each
    agent reported within REMOTE_WINDOW, wherever it runs; no recent value is no breach."""
    wanted = {a.target.agent_id: (a, thresholds.custom_rules(eff.for_agent(a.target.agent_id))) for a in agents}
    wanted = {aid: v for aid, v in wanted.items() if v[1]}
    if not wanted:
        return []
    names = sorted({rule for _, rules in wanted.values() for rule in rules})
    latest = store.latest_remote(conn, list(wanted), names, now - REMOTE_WINDOW)
    out = []
    for aid, (reg, rules) in wanted.items():
        settings = eff.for_agent(aid)
        notify = reg.silenced_until is None or reg.silenced_until <= now
        for name in rules:
            reported = latest.get((aid, name))
            value, at = (reported[0], reported[1]) if reported else (None, now)
            verdict = judge(settings[name], value, rule=name) if reported else False
            out.append(Verdict(agent_key(name, aid), name, settings[name], verdict, value, at,
                               f"agent {reg.target.name!r}", aid, notify))
    return out


def sample_once(conn: sa.Connection, *, host: str | None = None, now: datetime | None = None,
                evaluate_remote: bool = True, min_gap_s: float = 5.0, max_gap_s: float = 900.0) -> SampleResult:
    """Samples, stores and judges. Skips (and says why) when another sampler on this host
    stored a sample less than ``min_gap_s`` ago, since a rate over a few milliseconds is noise."""
    host = host or this_host()
    now = now or datetime.now(UTC)
    result = SampleResult(host, now)
    registered = store.registered_agents(conn)
    local = [a for a in registered if a.is_local(host)]
    remote = [a for a in registered if not a.is_local(host)]
    prev_at, prev_state = store.lock_state(conn, host)
    if prev_at is not None and (now - prev_at).total_seconds() < min_gap_s:
        result.skipped = f"a sample for {host} was stored at {prev_at.isoformat()}, less than {min_gap_s:g} s ago"
        return result
    cpu_start = time.thread_time()   # this thread only: the sensor shares its process with others
    readings = read_agents([a.target for a in local if a.locatable])
    reading_host = read_host()
    derived = derive(reading_host, readings, now, prev_at, prev_state, max_gap_s=max_gap_s)
    result.sampler_cpu_ms = (time.thread_time() - cpu_start) * 1000.0
    rows = [*derived.rows, (None, "sampler_cpu_ms", result.sampler_cpu_ms)]
    result.rows = store.insert_samples(conn, host, now, rows)
    store.save_state(conn, host, now, derived.state)
    result.baseline = derived.baseline
    result.host_metrics = {m: v for a, m, v in rows if a is None}
    by_agent: dict[int, dict[str, float]] = {}
    for aid, metric, value in rows:
        if aid is not None:
            by_agent.setdefault(aid, {})[metric] = value
    result.agents = [AgentSummary(r.target.agent_id, r.target.name, r.found, len(r.processes),
                                  by_agent.get(r.target.agent_id, {}).get("cpu_percent"),
                                  by_agent.get(r.target.agent_id, {}).get("rss_bytes"), r.problem)
                     for r in readings]
    result.unlocated = [a.target.name for a in local if not a.locatable]
    result.remote_agents = len(remote)
    judged_remote = remote if evaluate_remote else []
    eff = thresholds.resolve(store.global_thresholds(conn),
                             {a.target.agent_id: (a.target.name, a.thresholds) for a in local + judged_remote})
    result.threshold_problems = eff.problems
    remote_values = store.latest_remote(conn, [a.target.agent_id for a in judged_remote],
                                        ["cpu_percent", "rss_bytes"], now - REMOTE_WINDOW)
    verdicts = _verdicts(host, now, rows, readings, {a.target.agent_id: a for a in local}, judged_remote,
                         remote_values, eff)
    verdicts += _custom_verdicts(conn, now, local + judged_remote, eff)
    result.alerts = evaluate(conn, verdicts, evaluator=host, now=now)
    return result
