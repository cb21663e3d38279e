"""The code location loads, and the schema asset and its version check work on a real database."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import psycopg2

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.settings import PROJECT_DIR
from agents_pipeline.definitions import defs
from agents_pipeline.defs.schema.assets import schema_version_current, shared_state_schema
from agents_pipeline.platform.instance_env import dagster_env
from agents_pipeline.platform.resources import PostgresResource


def test_definitions_validate_with_dagster_cli(db_url: str) -> None:
    env = {**os.environ, **dagster_env(db_url)}
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", str(PROJECT_DIR / "workspace.yaml")],
        capture_output=True, text=True, env=env, cwd=PROJECT_DIR, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Validation successful for code location agents_pipeline" in proc.stderr + proc.stdout


def test_every_job_and_asset_resolves() -> None:
    repo = defs.get_repository_def()
    keys = {key.to_user_string() for key in repo.asset_graph.get_all_asset_keys()}
    assert "shared_state_schema" in keys
    for job in repo.get_all_jobs():
        assert job.name


def test_schema_asset_applies_and_reports_version(db_url: str) -> None:
    resource = PostgresResource(url=db_url)
    result = dg.materialize([shared_state_schema], resources={"postgres": resource},
                            instance=dg.DagsterInstance.ephemeral())
    metadata = result.asset_materializations_for_node("shared_state_schema")[0].metadata
    assert metadata["schema_version"].value == migrations.latest_version()
    assert metadata["migrations_applied_now"].value == 0
    assert metadata["tables"].value >= 15


def test_schema_check_fails_when_database_is_behind(db_url: str) -> None:
    resource = PostgresResource(url=db_url)
    ok = schema_version_current(postgres=resource)
    assert ok.passed
    conn = psycopg2.connect(**connect_kwargs(db_url))
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM public.agents_pipeline_migrations WHERE version = %s", (migrations.latest_version(),))
    conn.close()
    behind = schema_version_current(postgres=resource)
    assert not behind.passed
    assert behind.severity == dg.AssetCheckSeverity.ERROR
    assert "agents-pipeline db migrate" in behind.description
