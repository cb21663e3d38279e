"""``GET /metrics``: the fleet and this process in Prometheus' text format, by prometheus_client.

Two kinds of series:
- the fleet, read at each scrape through fleet.api_status and fleet.api_alerts (the operator
  key's functions): agents per status, each agent's status (a state set: 1 for its status, 0 for
  the others) and seconds since its last heartbeat, open alerts by kind and severity;
- this process's counters since it started: heartbeats stored (by ping and by batch), agent calls
  answered, refusals by HTTP status. They are per process: with ``--workers N`` or N replicas,
  each scrape reaches one process, so sum them in PromQL over the targets (or scrape each
  replica) rather than reading one scrape as the whole fleet's. Counters live in memory, so a
  restart starts them again at zero, which Prometheus' rate() handles.

prometheus_client's own registry and formatter rather than hand-written text: escaping of label
values (agent names are free text), HELP/TYPE lines and the format's version are its job.
"""

from __future__ import annotations

import math
from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STATUSES = ("new", "up", "late", "down", "paused")

disable_created_metrics()         # no *_created series: the counters' start is the process's
PROCESS = CollectorRegistry(auto_describe=True)
HEARTBEATS = Counter("agents_pipeline_api_heartbeats", "Heartbeats stored through this API process "
                     "(per process since it started)", ["path"], registry=PROCESS)
CALLS = Counter("agents_pipeline_api_calls", "Agent calls answered with success by this API process "
                "(per process since it started)", ["call"], registry=PROCESS)
REFUSALS = Counter("agents_pipeline_api_refusals", "Requests refused by this API process, by HTTP status "
                   "(per process since it started)", ["status"], registry=PROCESS)


def count_heartbeats(path: str, n: int = 1) -> None:
    if n:
        HEARTBEATS.labels(path).inc(n)


def count_call(call: str) -> None:
    CALLS.labels(call).inc()


def count_refusal(status: int) -> None:
    REFUSALS.labels(str(status)).inc()


class FleetSnapshot(Collector):
    """The fleet's series from one read of the status and the open alerts."""

    def __init__(self, agents: Iterable[Mapping[str, Any]], alerts: Iterable[Mapping[str, Any]]) -> None:
        self.agents = list(agents)
        self.alerts = list(alerts)

    def collect(self) -> Iterator[Metric]:
        per_status = Tally(a["status"] for a in self.agents)
        counts = GaugeMetricFamily("agents_pipeline_agents", "Registered agents by status", labels=["status"])
        for status in sorted(set(STATUSES) | set(per_status)):
            counts.add_metric([status], per_status.get(status, 0))
        yield counts

        state = GaugeMetricFamily("agents_pipeline_agent_status",
                                  "Each agent's status: 1 for the status it is in, 0 for the others",
                                  labels=["agent", "status"])
        since = GaugeMetricFamily("agents_pipeline_agent_seconds_since_heartbeat",
                                  "Seconds since the agent's last heartbeat (NaN: never heard)", labels=["agent"])
        for agent in self.agents:
            for status in STATUSES:
                state.add_metric([agent["name"], status], 1.0 if agent["status"] == status else 0.0)
            seconds = agent.get("seconds_since_heartbeat")
            since.add_metric([agent["name"]], math.nan if seconds is None else float(seconds))
        yield state
        yield since

        open_alerts = GaugeMetricFamily("agents_pipeline_alerts_open", "Open (unresolved) alerts")
        open_alerts.add_metric([], len(self.alerts))
        yield open_alerts
        by_kind = Tally((a["kind"], a["severity"]) for a in self.alerts)
        kinds = GaugeMetricFamily("agents_pipeline_alerts_open_by_kind", "Open alerts by kind and severity",
                                  labels=["kind", "severity"])
        for (kind, severity), n in sorted(by_kind.items()):
            kinds.add_metric([kind, severity], n)
        yield kinds


def exposition(agents: Iterable[Mapping[str, Any]], alerts: Iterable[Mapping[str, Any]]) -> bytes:
    """The text a scrape gets: the fleet's series, then this process's counters."""
    fleet = CollectorRegistry(auto_describe=False)
    fleet.register(FleetSnapshot(agents, alerts))
    return generate_latest(fleet) + generate_latest(PROCESS)
