"""Against a real `dagster dev`: runs launched through the webserver's GraphQL API (the way the
Makefile and docs launch them), and readiness of the running system."""

from __future__ import annotations

import subprocess
import sys
import time

import dagster as dg
import pytest

from agents_pipeline.core import migrations
from agents_pipeline.platform.launch import client_for, submit, wait

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gql.*")
READINESS = ("readiness", "--definitions", "agents_pipeline_tests.ui.ui_location")
_MATERIALIZATION = """query ($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetMaterializations(limit: 1) { runId metadataEntries { label ... on IntMetadataEntry { intValue } } } } } }"""


def _cli(dev, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agents_pipeline.cli.main", *args], env=dev.env,
                          capture_output=True, text=True, timeout=timeout)


def test_job_launched_through_graphql_runs_on_the_real_instance(dagster_dev):
    client = client_for(dagster_dev.url)
    run_id = submit(client, "schema_migrate_job", tags={"launched_by": "test"})
    assert wait(client, run_id, timeout_s=120) == "SUCCESS"
    # The run and its materialization are in the instance the webserver shows, with the metadata.
    data = dagster_dev.graphql(_MATERIALIZATION, {"key": {"path": ["shared_state_schema"]}})
    latest = data["data"]["assetOrError"]["assetMaterializations"][0]
    assert latest["runId"] == run_id
    metadata = {e["label"]: e.get("intValue") for e in latest["metadataEntries"]}
    assert metadata["schema_version"] == metadata["latest_version"] == migrations.latest_version()
    assert metadata["migrations_applied_now"] == 0


def test_launch_cli_waits_for_the_run_and_names_a_missing_job(dagster_dev):
    ok = _cli(dagster_dev, "launch", "schema_migrate_job", "--ui", dagster_dev.url, "--timeout", "120")
    assert ok.returncode == 0, ok.stderr
    assert f"{dagster_dev.url}/runs/" in ok.stdout and ok.stdout.rstrip().endswith("success")
    missing = _cli(dagster_dev, "launch", "no_such_job", "--ui", dagster_dev.url)
    assert missing.returncode == 2 and "no_such_job" in missing.stderr and "Traceback" not in missing.stderr


def test_readiness_passes_on_the_running_system(dagster_dev):
    """Regression: readiness must read the daemon's heartbeats and the instigators from the
    instance `dagster dev` writes (DAGSTER_HOME and storage from the environment)."""
    deadline = time.monotonic() + 90
    while True:
        proc = _cli(dagster_dev, *READINESS)
        if proc.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(3)  # the daemon writes its first heartbeats a few seconds after start
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    for name in ("environment", "database", "schema_version", "heartbeat_path", "agent_boundary", "dagster_daemon"):
        assert any(line.startswith("PASS") and f" {name} " in line for line in lines), name
    assert any(line.startswith("PASS") and " sensor:platform_readiness_sensor " in line for line in lines)
    assert lines[-1] == "ready"


def test_readiness_fails_when_a_sensor_is_stopped(dagster_dev):
    repo = _repo(dagster_dev)
    sensors = [s.name for s in repo.sensor_defs]
    if not sensors:
        pytest.fail("the code location declares no sensor to stop")
    name = sensors[0]
    stop = """mutation ($id: String!, $sel: String!) { stopSensor(id: $id, jobSelectorId: $sel) { __typename } }"""
    start = """mutation ($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }"""
    selector = {"repositoryLocationName": "agents_pipeline", "repositoryName": repo.name, "sensorName": name}
    from dagster._core.definitions.selector import InstigatorSelector

    sel_id = InstigatorSelector(location_name="agents_pipeline", repository_name=repo.name, name=name).get_id()
    origin = _sensor_origin_id(dagster_dev, selector)
    try:
        # A tick in flight when the stop lands writes the sensor's state back as it read it
        # (running); the daemon's own race, not readiness's. Stop again until the stop holds.
        deadline = time.monotonic() + 60
        while True:
            result = dagster_dev.graphql(stop, {"id": origin, "sel": sel_id})["data"]["stopSensor"]
            assert result["__typename"] == "StopSensorMutationResult"
            proc = _cli(dagster_dev, *READINESS)
            if proc.returncode != 0 or time.monotonic() > deadline:
                break
            time.sleep(2)
        assert proc.returncode == 1, proc.stdout
        assert any(line.startswith("FAIL") and f"sensor:{name}" in line and "stopped" in line
                   for line in proc.stdout.splitlines()), proc.stdout
    finally:
        dagster_dev.graphql(start, {"s": selector})


def _repo(dev) -> dg.RepositoryDefinition:
    from agents_pipeline_tests.ui import ui_location

    return ui_location.defs.get_repository_def()


def _sensor_origin_id(dev, selector: dict) -> str:
    query = """query ($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { id
      sensorState { id } } } }"""
    data = dev.graphql(query, {"s": selector})["data"]["sensorOrError"]
    return data["sensorState"]["id"]
