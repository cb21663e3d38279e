"""``soak_report``: each `agents-pipeline soak` run's results, recorded by the soak harness as a
materialization of this external asset (nothing in Dagster computes it: the soak runs the
whole stack, Dagster included, from outside)."""

import dagster as dg

soak_report = dg.AssetSpec(
    "soak_report",
    group_name="platform",
    owners=["team:agents-platform"],
    description="The live test's results (issue #19): heartbeats acknowledged against stored, every injected "
                "death's alert latency, false alerts, downtimes, memory flatness, with the markdown report's "
                "path. Recorded by `agents-pipeline soak` (make soak: 60 minutes, 200 agents).",
    kinds={"markdown"},
)
