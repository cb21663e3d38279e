"""deploy/dagster.yaml loads against a real PostgreSQL, with every setting it promises."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest
import yaml

from agents_pipeline.core import settings
from agents_pipeline.platform.instance_env import DAGSTER_URL, dagster_storage_env

DEPLOY = settings.PROJECT_DIR / "deploy"


@pytest.fixture
def deploy_home(tmp_path, dagster_storage_url, db_url, monkeypatch):
    """A DAGSTER_HOME holding a copy of deploy/dagster.yaml, and the environment it reads."""
    shutil.copy(DEPLOY / "dagster.yaml", tmp_path / "dagster.yaml")
    monkeypatch.setenv(DAGSTER_URL, dagster_storage_url)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), settings.DATABASE_URL: db_url,
           **dagster_storage_env(db_url)}
    return tmp_path, env


def test_dagster_instance_info_loads_the_deploy_configuration(deploy_home):
    home, env = deploy_home
    proc = subprocess.run([sys.executable, "-m", "dagster", "instance", "info"], env=env, cwd=home,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "PostgresRunStorage" in out and "PostgresEventLogStorage" in out and "PostgresScheduleStorage" in out
    # (the coordinator is built lazily, so `instance info` prints it as NoneType; see the next test)
    assert "DagsterDaemonScheduler" in out and "DefaultRunLauncher" in out
    assert "max_concurrent_runs: 8" in out and "retry_on_asset_or_op_failure: false" in out
    schema = out.split("Storage schema state:", 1)[1]
    versions = [line.split(":", 1)[1].strip() for line in schema.splitlines() if line.strip().startswith(("current", "latest"))]
    assert len(versions) == 6 and len(set(versions)) == 1  # the storage was created and is current


def test_deploy_settings_take_effect(deploy_home, monkeypatch):
    home, env = deploy_home
    for key in ("DAGSTER_HOME", *dagster_storage_env(env[settings.DATABASE_URL])):
        monkeypatch.setenv(key, env[key])
    with dg.DagsterInstance.get() as instance:
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 8
        limits = {limit["key"]: limit for limit in queue.tag_concurrency_limits}
        assert limits["agents_pipeline/job"]["value"] == {"applyLimitPerUniqueValue": True}
        assert limits["dagster/backfill"]["limit"] == 2
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
        assert instance.run_monitoring_enabled and instance.run_retries_enabled
        assert instance.run_retries_max_retries == 2 and not instance.run_retries_retry_on_asset_or_op_failure
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert instance.run_storage._engine is instance.event_log_storage._engine  # one pooled engine
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_coordinator.get_run_queue_config().max_user_code_failure_retries == 6
        assert instance.run_monitoring_max_runtime_seconds == 21600
        # The storage really is the test database: a run written here is read back.
        assert instance.get_runs_count() == 0


def test_deploy_workspace_names_the_grpc_code_location():
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    server = workspace["load_from"][0]["grpc_server"]
    assert server["location_name"] == "agents_pipeline" and server["host"] == {"env": "AGENTS_PIPELINE_CODE_SERVER_HOST"}
