"""What the Dagster UI shows of a sample and of a rollup: numbers to plot and markdown tables.

Numbers go into metadata as plain floats (the UI plots every numeric entry over the
materializations); the tables are for reading, not plotting.
"""

from __future__ import annotations

from agents_pipeline.defs.performance.rollups import RollupResult
from agents_pipeline.defs.performance.sampler import AgentSummary, SampleResult
from agents_pipeline.platform.markdown import escape_md

# Every sample's metadata lands in Dagster's event log (about 4 KB an event, 1,440 a day at
# the default cadence), so the tables stay short: the database holds the full picture.
TOP = 5
MAX_MISSING = 10
# The host metrics worth a plot of their own; the rest stay in the database and the rollups.
HOST_PLOTS = ("cpu_percent", "memory_percent", "swap_percent", "load1", "disk_read_bytes_per_s",
              "disk_write_bytes_per_s", "net_recv_bytes_per_s", "net_sent_bytes_per_s", "sampler_cpu_ms")
AGENT_PLOTS = ("cpu_percent", "rss_bytes", "fds", "threads")


def mib(value: float | None) -> str:
    return "-" if value is None else f"{value / 1048576:,.1f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _escape(text: str) -> str:
    """Agent names and process problems are agent-controlled text: no links, images or cell breaks."""
    return escape_md(text)


def top_agents_table(agents: list[AgentSummary]) -> str:
    by_cpu = sorted((a for a in agents if a.found), key=lambda a: -(a.cpu_percent or 0.0))[:TOP]
    by_rss = sorted((a for a in agents if a.found), key=lambda a: -(a.rss_bytes or 0.0))[:TOP]
    lines = ["**Top agents by CPU**", "", "| agent | CPU % | RSS MiB | processes |", "|---|---:|---:|---:|"]
    lines += [f"| {_escape(a.name)} | {_pct(a.cpu_percent)} | {mib(a.rss_bytes)} | {a.processes} |" for a in by_cpu]
    lines += ["", "**Top agents by memory**", "", "| agent | RSS MiB | CPU % |", "|---|---:|---:|"]
    lines += [f"| {_escape(a.name)} | {mib(a.rss_bytes)} | {_pct(a.cpu_percent)} |" for a in by_rss]
    missing = [a for a in agents if not a.found]
    if missing:
        lines += ["", "**Not found**", "", "| agent | why |", "|---|---|"]
        lines += [f"| {_escape(a.name)} | {_escape(a.problem or '')} |" for a in missing[:MAX_MISSING]]
        if len(missing) > MAX_MISSING:
            lines.append(f"| ... and {len(missing) - MAX_MISSING} more | |")
    return "\n".join(lines)


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


def rollup_metadata(result: RollupResult) -> dict[str, object]:
    """p95 per host metric and per agent for the main agent metrics, as numbers."""
    meta: dict[str, object] = {"raw_samples": result.raw_samples, "rollup_rows": len(result.rows),
                               "rows_changed": result.changed}
    for row in result.rows:
        if row.agent_id is None and row.metric in HOST_PLOTS:
            meta[f"p95_host_{row.metric}"] = float(row.p95_value)
        elif row.agent_id is None and row.metric.startswith("disk_used_percent:"):
            meta[f"p95_host_{row.metric}"] = float(row.p95_value)
        elif row.agent_id is not None and row.metric in AGENT_PLOTS:
            scale = 1048576.0 if row.metric == "rss_bytes" else 1.0
            unit = "rss_mib" if row.metric == "rss_bytes" else row.metric
            meta[f"p95_{unit}[{row.agent or row.agent_id}]"] = float(row.p95_value) / scale
    return meta


def rollup_table(result: RollupResult) -> str:
    per_agent: dict[str, dict[str, float]] = {}
    for row in result.rows:
        if row.agent_id is not None and row.metric in AGENT_PLOTS:
            per_agent.setdefault(row.agent or str(row.agent_id), {})[row.metric] = row.p95_value
            per_agent[row.agent or str(row.agent_id)][f"max_{row.metric}"] = row.max_value
    lines = ["| agent | p95 CPU % | max CPU % | p95 RSS MiB | max RSS MiB | p95 fds | p95 threads |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in sorted(per_agent.items(), key=lambda kv: -kv[1].get("cpu_percent", 0.0)):
        lines.append(f"| {_escape(name)} | {_pct(m.get('cpu_percent'))} | {_pct(m.get('max_cpu_percent'))} | "
                     f"{mib(m.get('rss_bytes'))} | {mib(m.get('max_rss_bytes'))} | {_pct(m.get('fds'))} | "
                     f"{_pct(m.get('threads'))} |")
    return "\n".join(lines)
