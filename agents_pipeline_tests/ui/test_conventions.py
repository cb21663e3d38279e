"""The code location as an operator finds it in the UI: every asset in its domain's group,
described, owned, with kinds and a link to its code; every schedule and sensor running by
default; names that say what they are. Reads the whole code location, so each domain's assets
are held to this as soon as they are merged."""

from __future__ import annotations

import dagster as dg
import pytest

DOMAIN_GROUPS = {"platform", "heartbeats", "performance", "langsmith", "retention", "migration", "help",
                 "coordination", "agents"}
OWNER = "team:agents-platform"


@pytest.fixture(scope="module")
def repo() -> dg.RepositoryDefinition:
    from agents_pipeline_tests.ui import ui_location

    return ui_location.defs.get_repository_def()


def _assets(repo, materializable_only: bool = False):
    graph = repo.asset_graph
    nodes = [graph.get(k) for k in graph.get_all_asset_keys()]
    return [n for n in nodes if n.is_materializable or not materializable_only]


def test_every_asset_is_grouped_described_owned_and_kinded(repo):
    """External specs too: an AssetSpec a job reports on is a node in the graph like any other."""
    problems = []
    for node in _assets(repo):
        name = node.key.to_user_string()
        if node.group_name not in DOMAIN_GROUPS:
            problems.append(f"{name}: group {node.group_name!r} is not a domain")
        if not (node.description or "").strip():
            problems.append(f"{name}: no description")
        if OWNER not in node.owners:
            problems.append(f"{name}: owners {node.owners} lack {OWNER}")
        if not node.kinds:
            problems.append(f"{name}: no kinds")
    assert not problems, "\n".join(problems)


def test_every_asset_links_to_its_code(repo):
    missing = [n.key.to_user_string() for n in _assets(repo, materializable_only=True)
               if "dagster/code_references" not in n.metadata]
    assert not missing, f"no code references (wrap assets with dg.with_source_code_references): {missing}"


def test_every_schedule_and_sensor_runs_by_default_and_is_named_for_it(repo):
    problems = [f"schedule {s.name} is not RUNNING by default" for s in repo.schedule_defs
                if s.default_status != dg.DefaultScheduleStatus.RUNNING]
    problems += [f"sensor {s.name} is not RUNNING by default" for s in repo.sensor_defs
                 if s.default_status != dg.DefaultSensorStatus.RUNNING]
    problems += [f"schedule {s.name} lacks the _schedule suffix" for s in repo.schedule_defs if not s.name.endswith("_schedule")]
    problems += [f"sensor {s.name} lacks the _sensor suffix" for s in repo.sensor_defs if not s.name.endswith("_sensor")]
    problems += [f"job {name} lacks the _job suffix" for name in repo.job_names
                 if not name.startswith("__") and not name.endswith("_job")]
    assert not problems, "\n".join(problems)


def test_every_asset_check_says_what_it_checks(repo):
    graph = repo.asset_graph
    undocumented = [key.to_user_string() for key in graph.asset_check_keys
                    if not (graph.get_check_spec(key).description or "").strip()]
    assert not undocumented, f"asset checks without a description: {undocumented}"


def test_dagster_vocabulary_issue_21(repo):
    """Issue #21: time-partitioned assets have a freshness policy and start at the history start
    (a setting, not a query); a table asset names its table and its columns; an asset that calls
    the network retries with backoff and jitter; the sensors that report materializations are
    their assets' automation (the asset page lists them)."""
    from agents_pipeline.platform.history_start import history_start

    problems = []
    for node in _assets(repo, materializable_only=True):
        name = node.key.to_user_string()
        parts = node.partitions_def
        if isinstance(parts, dg.TimeWindowPartitionsDefinition) and "archive" not in name:
            if node.freshness_policy is None:
                problems.append(f"{name}: time-partitioned without a freshness policy")
            if parts.start.date() != history_start():
                problems.append(f"{name}: partitions start {parts.start.date()}, not the history start")
        if "dagster/table_name" in node.metadata and "dagster/column_schema" not in node.metadata \
                and parts is not None:
            problems.append(f"{name}: a partitioned table without a column schema")
        if "langsmith" in node.kinds:
            policy = repo.assets_defs_by_key[node.key].op.retry_policy
            if policy is None or policy.backoff is None or policy.jitter is None:
                problems.append(f"{name}: retry policy without backoff and jitter")
    for sensor, key in (("performance_sampler_sensor", "performance_samples"), ("agent_health_sensor", "agent_health"),
                        ("platform_readiness_sensor", "platform_readiness"), ("llm_usage_sensor", "llm_usage_daily"),
                        ("agent_story_sensor", "agent_story")):
        selection = repo.get_sensor_def(sensor).asset_selection
        if selection is None or dg.AssetKey(key) not in selection.resolve(repo.asset_graph):
            problems.append(f"{sensor} does not name {key} as its target (the asset shows no automation)")
    assert not problems, "\n".join(problems)
