"""The demo's first runs: the latest partition of every partitioned asset, launched once.

Schedules materialize new partitions as time passes, but a fresh install would show empty
rollups, stats and archives until the next hour or day. After the history is seeded, one
run per partitioned asset for its latest partition (the last complete hour of rollups,
yesterday's stats, the newest day past retention for archival) fills every group at once.
Read from the definitions, so a domain merged later is picked up without changing this.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import dagster as dg

from agents_pipeline.platform.launch import client_for, submit


@dataclass(frozen=True)
class Launch:
    asset_key: str
    partition: str


def kickoff_plan(repo: dg.RepositoryDefinition) -> list[Launch]:
    """One launch per materializable partitioned asset: its last partition, if it has one."""
    plan = []
    graph = repo.asset_graph
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        if not node.is_materializable or node.partitions_def is None:
            continue
        if isinstance(node.partitions_def, dg.DynamicPartitionsDefinition):
            continue   # one per agent (agent_story): its sensor fills them, and listing them needs an instance
        last = node.partitions_def.get_last_partition_key()
        if last is not None:
            plan.append(Launch(key.to_user_string(), last))
    return plan


def wait_for_webserver(url: str, timeout_s: float = 180.0) -> None:
    """Waits until the webserver answers GraphQL (make demo starts beside make run)."""
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=5):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no Dagster webserver at {url} after {timeout_s:.0f} s (is `make run` up?)") from None
            time.sleep(2)


def kickoff(url: str, repo: dg.RepositoryDefinition) -> list[tuple[Launch, str]]:
    """Queues the plan through the webserver; returns each launch with its run id."""
    client = client_for(url)
    return [(item, submit(client, "__ASSET_JOB", asset_keys=[item.asset_key], partition=item.partition,
                          tags={"agents_pipeline/demo": "kickoff"}))
            for item in kickoff_plan(repo)]
