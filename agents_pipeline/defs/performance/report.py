"""What the Dagster UI shows of a sample and of a rollup: fleet-level numbers to plot, top-N tables.

Numbers go into metadata as plain floats (the UI plots every numeric entry over the
materializations), one per fleet-level series, never one per agent: at 1,000 agents a key per
agent and metric would make thousands of plots (issue #21). The per-agent picture is in the
top-N tables here and on each agent's own page (the ``agent_story`` asset, one partition per
agent). Tables are ``MetadataValue.table``: the UI renders their cells as text, so agent-chosen
names cannot become links or images.
"""

from __future__ import annotations

import dagster as dg

from agents_pipeline.defs.performance.rollups import RollupResult, RollupRow
from agents_pipeline.defs.performance.sampler import AgentSummary, SampleResult

# Every sample's metadata lands in Dagster's event log (about 4 KB an event, 1,440 a day at
# the default cadence), so the tables stay short: the database holds the full picture.
TOP = 5
TOP_ROLLUP = 10
MAX_MISSING = 10
# The host metrics worth a plot of their own; the rest stay in the database and the rollups.
HOST_PLOTS = ("cpu_percent", "memory_percent", "swap_percent", "load1", "disk_read_bytes_per_s",
              "disk_write_bytes_per_s", "net_recv_bytes_per_s", "net_sent_bytes_per_s", "sampler_cpu_ms")
AGENT_PLOTS = ("cpu_percent", "rss_bytes", "fds", "threads")
MIB = 1048576.0

ROLLUP_COLUMNS = dg.TableSchema(columns=[
    dg.TableColumn("hour", "timestamp", description="start of the UTC hour"),
    dg.TableColumn("host", "string", description="host the samples came from"),
    dg.TableColumn("agent_id", "bigint", description="the agent; NULL for the host's own metrics"),
    dg.TableColumn("metric", "string", description="e.g. cpu_percent, rss_bytes, load1"),
    dg.TableColumn("samples", "integer", description="raw samples in the hour"),
    dg.TableColumn("min_value", "float8"),
    dg.TableColumn("mean_value", "float8"),
    dg.TableColumn("p50_value", "float8", description="percentile_cont(0.5)"),
    dg.TableColumn("p95_value", "float8", description="percentile_cont(0.95)"),
    dg.TableColumn("max_value", "float8"),
    dg.TableColumn("computed_at", "timestamp", description="moves only when a value changed"),
])


def mib(value: float | None) -> float | None:
    return None if value is None else round(value / MIB, 1)


def _num(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(float(value), digits)


def _table(columns: list[tuple[str, str]], rows: list[dict]) -> dg.TableMetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns])
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in rows], schema=schema)


def top_agents_tables(agents: list[AgentSummary]) -> dict[str, dg.TableMetadataValue]:
    """Top agents by CPU and by memory in this sample, and the agents whose process was not found."""
    found = [a for a in agents if a.found]
    by_cpu = sorted(found, key=lambda a: -(a.cpu_percent or 0.0))[:TOP]
    by_rss = sorted(found, key=lambda a: -(a.rss_bytes or 0.0))[:TOP]
    cols = [("agent", "string"), ("cpu_percent", "float"), ("rss_mib", "float"), ("processes", "int")]
    tables = {
        "top_agents_by_cpu": _table(cols, [{"agent": a.name, "cpu_percent": _num(a.cpu_percent),
                                            "rss_mib": mib(a.rss_bytes), "processes": a.processes} for a in by_cpu]),
        "top_agents_by_memory": _table(cols, [{"agent": a.name, "cpu_percent": _num(a.cpu_percent),
                                               "rss_mib": mib(a.rss_bytes), "processes": a.processes} for a in by_rss]),
    }
    missing = [a for a in agents if not a.found]
    if missing:
        rows = [{"agent": a.name, "why": (a.problem or "")[:300]} for a in missing[:MAX_MISSING]]
        if len(missing) > MAX_MISSING:
            rows.append({"agent": f"... and {len(missing) - MAX_MISSING} more", "why": ""})
        tables["agents_not_found"] = _table([("agent", "string"), ("why", "string")], rows)
    return tables


def sample_metadata(result: SampleResult) -> dict[str, object]:
    """Numeric metadata for the sensor's materialization of ``performance_samples``."""
    meta: dict[str, object] = {f"host_{m}": float(result.host_metrics[m]) for m in HOST_PLOTS
                               if m in result.host_metrics}
    disks = [v for m, v in result.host_metrics.items() if m.startswith("disk_used_percent:")]
    if disks:
        meta["host_disk_used_percent_max"] = float(max(disks))
    meta.update({
        "agents_sampled": len(result.agents),
        "agents_missing": len(result.missing),
        "agents_remote": result.remote_agents,
        "rows": result.rows,
        "alerts_opened": len(result.alerts.opened),
        "alerts_resolved": len(result.alerts.resolved),
        "baseline_only": result.baseline,
        "host": result.host,
    })
    return meta


def _per_agent(rows: list[RollupRow]) -> dict[str, dict[str, RollupRow]]:
    out: dict[str, dict[str, RollupRow]] = {}
    for row in rows:
        if row.agent_id is not None and row.metric in AGENT_PLOTS:
            out.setdefault(row.agent or str(row.agent_id), {})[row.metric] = row
    return out


def rollup_metadata(results: list[RollupResult]) -> dict[str, object]:
    """Fleet-level series of the hour(s): the host's p95s, the agents' spread; a constant number of keys."""
    rows = [row for r in results for row in r.rows]
    meta: dict[str, object] = {
        "dagster/row_count": len(rows),
        "hours": len(results),
        "raw_samples": sum(r.raw_samples for r in results),
        "rows_changed": sum(r.changed for r in results),
    }
    host: dict[str, list[float]] = {}
    for row in rows:
        if row.agent_id is None and (row.metric in HOST_PLOTS or row.metric.startswith("disk_used_percent:")):
            name = "disk_used_percent_max" if row.metric.startswith("disk_used_percent:") else row.metric
            host.setdefault(name, []).append(float(row.p95_value))
    for name, values in sorted(host.items()):
        meta[f"p95_host_{name}"] = round(max(values), 2)
    per_agent = _per_agent(rows)
    meta["agents"] = len(per_agent)
    cpu = [m["cpu_percent"].p95_value for m in per_agent.values() if "cpu_percent" in m]
    rss = [m["rss_bytes"].p95_value / MIB for m in per_agent.values() if "rss_bytes" in m]
    if cpu:
        meta["agents_p95_cpu_percent_max"] = round(max(cpu), 2)
        meta["agents_p95_cpu_percent_mean"] = round(sum(cpu) / len(cpu), 2)
    if rss:
        meta["agents_p95_rss_mib_max"] = round(max(rss), 2)
        meta["agents_p95_rss_mib_total"] = round(sum(rss), 1)
    return meta


def rollup_top_tables(results: list[RollupResult]) -> dict[str, dg.TableMetadataValue]:
    """The top agents by p95 CPU and by p95 memory (an agent appears once, at its worst hour)."""
    worst: dict[str, dict[str, float | None]] = {}
    for result in results:
        for name, m in _per_agent(result.rows).items():
            entry = worst.setdefault(name, {})
            for metric, key in (("cpu_percent", "cpu"), ("rss_bytes", "rss"), ("fds", "fds"), ("threads", "threads")):
                if metric in m:
                    entry[f"p95_{key}"] = max(entry.get(f"p95_{key}") or 0.0, m[metric].p95_value)
                    entry[f"max_{key}"] = max(entry.get(f"max_{key}") or 0.0, m[metric].max_value)
    cols = [("agent", "string"), ("p95_cpu_percent", "float"), ("max_cpu_percent", "float"),
            ("p95_rss_mib", "float"), ("max_rss_mib", "float"), ("p95_fds", "float"), ("p95_threads", "float")]

    def record(name: str, e: dict[str, float | None]) -> dict:
        return {"agent": name, "p95_cpu_percent": _num(e.get("p95_cpu")), "max_cpu_percent": _num(e.get("max_cpu")),
                "p95_rss_mib": mib(e.get("p95_rss")), "max_rss_mib": mib(e.get("max_rss")),
                "p95_fds": _num(e.get("p95_fds")), "p95_threads": _num(e.get("p95_threads"))}

    by_cpu = sorted(worst.items(), key=lambda kv: -(kv[1].get("p95_cpu") or 0.0))[:TOP_ROLLUP]
    by_rss = sorted(worst.items(), key=lambda kv: -(kv[1].get("p95_rss") or 0.0))[:TOP_ROLLUP]
    return {"top_agents_by_p95_cpu": _table(cols, [record(n, e) for n, e in by_cpu]),
            "top_agents_by_p95_memory": _table(cols, [record(n, e) for n, e in by_rss])}
