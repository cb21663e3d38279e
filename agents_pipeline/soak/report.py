"""The soak report: markdown with PNG plots in the output folder, and an ``AssetMaterialization``
of ``soak_report`` so the Dagster UI lists each soak's results beside the assets."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from agents_pipeline.soak import plan
from agents_pipeline.soak.findings import FLAT_RATIO, group_of
from agents_pipeline.soak.harness import SoakRun
from agents_pipeline.soak.usage import HOST, UsageSample

ASSET_KEY = "soak_report"
LATENCY_GOAL_S = 30.0


def verdict(findings: dict[str, Any]) -> dict[str, bool]:
    d, det, acc = findings["delivery"], findings["detection"], findings["accuracy"]
    p95 = det["latency_p95_s"]
    return {
        "no acknowledged heartbeat lost": d["lost"] == 0,
        "every injected death alerted": not det["missed"] and det["deaths"] > 0,
        f"alert latency p95 <= {LATENCY_GOAL_S:.0f} s": p95 is not None and p95 <= LATENCY_GOAL_S,
        "no false alerts": not acc["false_alerts"],
        "every fault injected and restored": not findings.get("harness_errors"),
        "downtimes right": not acc["resolutions_wrong"],
        f"memory flat (end <= {FLAT_RATIO}x halfway)": findings["resources"]["flat"],
    }


def plots(out: Path, run: SoakRun, samples: list[UsageSample], per_bucket: list[tuple[float, int]]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    t0 = run.started_at

    def faults(ax) -> None:
        for f in run.injected:
            ax.axvline((f.at - t0) / 60, color="red" if f.kind != "burst" else "orange", alpha=0.35, lw=1)

    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot([(t - t0) / 60 for t, _ in per_bucket], [n / 10 for _, n in per_bucket], lw=1)
    faults(ax)
    ax.set(xlabel="minutes", ylabel="heartbeats stored / s", title="Heartbeats stored (faults in red, burst in orange)")
    fig.tight_layout()
    fig.savefig(out / "heartbeats.png", dpi=100)
    plt.close(fig)
    files.append("heartbeats.png")

    for metric, label, scale, name in (("cpu_percent", "CPU, % of one core", 1.0, "cpu.png"),
                                       ("rss_bytes", "memory (PSS), MB", 1 / 2**20, "memory.png")):
        series: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
        for s in samples:
            if s.component != HOST:
                series[group_of(s.component)][round(s.at)] += getattr(s, metric) * scale
        fig, ax = plt.subplots(figsize=(9, 3.5))
        for group, points in sorted(series.items()):
            xs = sorted(points)
            ax.plot([(x - t0) / 60 for x in xs], [points[x] for x in xs], lw=1, label=group)
        faults(ax)
        ax.set(xlabel="minutes", ylabel=label, title=label + " per component (agent hosts summed)")
        ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        fig.savefig(out / name, dpi=100)
        plt.close(fig)
        files.append(name)
    return files


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    return head + "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)


def markdown(run: SoakRun, findings: dict[str, Any], images: list[str]) -> str:
    v = verdict(findings)
    d, det, acc = findings["delivery"], findings["detection"], findings["accuracy"]
    res, sto = findings["resources"], findings["storage"]
    counts: dict[str, int] = defaultdict(int)
    for f in run.injected:
        counts[f.kind] += 1
    lines = [
        f"# Soak report: {run.minutes:g} minutes, {run.agents} agents",
        "",
        f"`agents-pipeline soak --minutes {run.minutes:g} --agents {run.agents}`; agents heartbeat every "
        f"{plan.PERIOD_S:g} s with a grace of {plan.GRACE_S:g} s, half over SQL with their own logins, half as HTTP "
        f"pings; the stack took {run.startup_s:.0f} s to turn every agent up.",
        "",
        "Faults injected: " + ", ".join(f"{k} × {n}" for k, n in sorted(counts.items())) + ".",
        "",
        "| goal | met |", "|---|---|", *[f"| {k} | {'yes' if ok else '**no**'} |" for k, ok in v.items()],
        "",
        "## 1. Delivery: every heartbeat acknowledged is stored",
        _table([d], ["acknowledged", "stored_of_acknowledged", "lost", "duplicates", "refused_by_rate_limit",
                     "not_acknowledged"]),
        ("Lost: " + ", ".join(d["lost_examples"])) if d["lost"] else "",
        "`refused_by_rate_limit` are the burst's refusals (the trust issue's limits); `not_acknowledged` "
        "are heartbeats that failed within their retry window (the sender knew): neither is a loss.",
        "",
        "## 2. Detection: every injected death alerted, through the webhook",
        _table([det], ["deaths", "alerted", "latency_p50_s", "latency_p95_s", "latency_max_s"]),
        "Latency runs from the `kill -9` to the notice's arrival at the webhook receiver.",
        "" if not det["collapse"] else
        "Fleet-collapse fault: {agents_killed} agents killed at once; incident opened: {incident_opened}; "
        "per-agent notices sent meanwhile: {per_agent_notices_sent}.".format(**det["collapse"]),
        "",
        "## 3. Accuracy: no false alerts, downtimes right",
        f"{acc['alerts_opened']} alerts opened, {acc['expected']} explained by a fault, "
        f"{len(acc['false_alerts'])} false. {acc['resolutions_checked']} resolved agent alerts checked against the "
        f"ledgers; largest downtime error {acc['downtime_error_max_s']} s (tolerance 2 s).",
        "",
        _table(acc["false_alerts"], ["alert_id", "kind", "key", "agent", "opened_s"]) if acc["false_alerts"] else "",
        "## 4. Resources: CPU and memory of every process",
        f"The machine: mean CPU {res.get('host_cpu_mean_percent')} % of its cores, 1-minute load average up to "
        f"{res.get('load_average_max')} (2 cores; anything above the stack's own use ran beside the soak).",
        "",
        _table([{"component": k, **r} for k, r in res["components"].items()],
               ["component", "cpu_mean_percent", "rss_mid_mb", "rss_end_mb", "end_to_mid", "worst_end_to_mid",
                "hosts", "judged", "lived_s"]),
        "Memory is PSS, in MB. `end_to_mid` compares the end with the soak's halfway point, for processes "
        "alive then and still (`judged`); a process restarted by a fault after the halfway point is not judged.",
        "",
        "## 5. Storage against the retention plan",
        _table([sto], ["database_mb", "heartbeat_rows", "heartbeat_mb", "bytes_per_heartbeat", "retention_days",
                       "projected_heartbeat_gb_at_retention"]),
        "The projection keeps this soak's heartbeat rate for the retention period; the retention job "
        "drops older partitions.",
        "",
        *[f"![{name}]({name})" for name in images],
        "",
    ]
    return "\n".join(line for line in lines if line is not None)


def materialization(findings: dict[str, Any], report_path: Path, text: str):
    import dagster as dg

    v = verdict(findings)
    det = findings["detection"]
    metadata = {
        "report": dg.MetadataValue.path(str(report_path)),
        "passed": all(v.values()),
        "acknowledged": findings["delivery"]["acknowledged"],
        "lost": findings["delivery"]["lost"],
        "deaths": det["deaths"], "missed": len(det["missed"]),
        "alert_latency_p95_s": det["latency_p95_s"] if det["latency_p95_s"] is not None else -1.0,
        "false_alerts": len(findings["accuracy"]["false_alerts"]),
        "memory_flat": findings["resources"]["flat"],
        "summary": dg.MetadataValue.md(text.split("## 1.")[0]),
        "findings": dg.MetadataValue.json(json.loads(json.dumps(findings, default=str))),
    }
    return dg.AssetMaterialization(ASSET_KEY, metadata=metadata)


def record(findings: dict[str, Any], report_path: Path, text: str) -> str:
    """Records the materialization in the Dagster instance of `make run` (DAGSTER_HOME, else the
    project folder's instance on its local PostgreSQL); returns where, or why not."""
    import dagster as dg

    event = materialization(findings, report_path, text)
    try:
        import os

        from agents_pipeline.platform.instance_env import dagster_env, local_cluster_url

        url = os.environ.get("AGENTS_PIPELINE_DATABASE_URL") or local_cluster_url()
        if url is None:
            return "not recorded: no project database (run `make run` first to see soaks in the UI)"
        for key, value in dagster_env(url).items():
            os.environ.setdefault(key, value)
        with dg.DagsterInstance.get() as instance:
            instance.report_runless_asset_event(event)
        return f"recorded as a materialization of {ASSET_KEY}"
    except Exception as exc:   # the report on disk stands without it
        return f"not recorded in Dagster: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
