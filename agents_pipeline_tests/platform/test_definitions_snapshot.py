"""A snapshot of the code location's graph: asset keys and groups, checks, jobs, schedule crons,
sensor intervals, resources and code references. Moving a module (the `dg` layout, a new
domain) must not change what operators see; a deliberate change updates the snapshot with

    .venv/bin/python -m agents_pipeline_tests.platform.test_definitions_snapshot > \
        agents_pipeline_tests/platform/definitions_snapshot.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SNAPSHOT = Path(__file__).with_name("definitions_snapshot.json")


def current() -> dict[str, list[str]]:
    from agents_pipeline.definitions import defs

    repo = defs.get_repository_def()
    graph = repo.asset_graph
    keys = graph.get_all_asset_keys()
    return {
        "assets": sorted(k.to_user_string() for k in keys),
        "groups": sorted(f"{k.to_user_string()}:{graph.get(k).group_name}" for k in keys),
        "checks": sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys),
        "jobs": sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")),
        "schedules": sorted(f"{s.name}|{s.cron_schedule}|{s.job_name}|{s.default_status.value}"
                            for s in repo.schedule_defs),
        "sensors": sorted(f"{s.name}|{s.minimum_interval_seconds}|{s.default_status.value}" for s in repo.sensor_defs),
        "resources": sorted(repo.get_top_level_resources()),
        "code_refs": sorted(k.to_user_string() for k in keys
                            if "dagster/code_references" in (graph.get(k).metadata or {})),
    }


def test_the_graph_matches_the_snapshot():
    """Guards against an asset, check, job, schedule, sensor or resource lost, renamed or re-timed
    by a refactor (the autoloader silently skips a module that no longer holds a definition)."""
    assert current() == json.loads(SNAPSHOT.read_text())


def test_every_schedule_and_sensor_starts_running():
    """The product's decision: schedules and sensors start RUNNING by default."""
    snapshot = json.loads(SNAPSHOT.read_text())
    assert all(line.endswith("|RUNNING") for line in snapshot["schedules"] + snapshot["sensors"])


if __name__ == "__main__":
    json.dump(current(), sys.stdout, indent=1)
    print()
