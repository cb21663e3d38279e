"""platform_readiness as the UI shows it: asset checks from a run and from the sensor."""

from __future__ import annotations

import dagster as dg

from agents_pipeline.definitions import load_domain
from agents_pipeline.defs.readiness.assets import (
    ASSET_KEY,
    CHECKS,
    _evaluations,
    _metadata,
    platform_readiness,
    platform_readiness_sensor,
)
from agents_pipeline.defs.readiness.checklist import Check
from agents_pipeline.platform.markdown import ZERO_WIDTH_SPACE
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.markdown_oracle import live_markup, table_rows


def test_materialization_reports_each_check_and_a_missing_daemon(db_url, pg_instance):
    result = dg.materialize([platform_readiness], instance=pg_instance,
                            resources={"postgres": PostgresResource(url=db_url)}, raise_on_error=False)
    assert result.success  # checks report failures; they do not fail the run
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == set(CHECKS)
    assert all(evaluations[n].passed for n in ("environment", "database", "schema_version", "heartbeat_path",
                                                "agent_boundary", "read_replica"))
    # No daemon runs beside dg.materialize: the one failure, named.
    assert not evaluations["schedules_and_sensors"].passed
    assert "daemon not heartbeating" in evaluations["schedules_and_sensors"].description
    metadata = result.asset_materializations_for_node("platform_readiness")[0].metadata
    assert metadata["checks_passed"].value == 6 and metadata["checks_failed"].value == 1
    assert metadata["latency_ms"].value > 0 and metadata["schema_version"].value == metadata["latest_version"].value


def test_sensor_reports_without_a_run(db_url, pg_instance):
    defs = dg.Definitions(assets=[platform_readiness], sensors=[platform_readiness_sensor],
                          resources={"postgres": PostgresResource(url=db_url)})
    with dg.build_sensor_context(instance=pg_instance, repository_def=defs.get_repository_def(),
                                 resources={"postgres": PostgresResource(url=db_url)}) as context:
        result = platform_readiness_sensor(context)
    assert not result.run_requests
    kinds = [type(e).__name__ for e in result.asset_events]
    assert kinds == ["AssetMaterialization"] + ["AssetCheckEvaluation"] * len(CHECKS)
    assert result.asset_events[0].asset_key == ASSET_KEY
    assert result.asset_events[0].metadata["checks_passed"].value == 6
    sensor_check = next(e for e in result.asset_events[1:] if e.check_name == "schedules_and_sensors")
    assert "sensor:platform_readiness_sensor" in sensor_check.description or "daemon" in sensor_check.description


def test_ui_definitions_load_beside_the_platform():
    resources = dg.Definitions(resources={"postgres": PostgresResource(url="postgresql+psycopg2://u@h/db")})
    repo = dg.Definitions.merge(load_domain("schema"), load_domain("readiness"), resources).get_repository_def()
    job = repo.get_job("schema_migrate_job")
    assert [str(k.path[-1]) for k in job.asset_layer.selected_asset_keys] == ["shared_state_schema"]
    assert repo.get_sensor_def("platform_readiness_sensor").default_status == dg.DefaultSensorStatus.RUNNING
    assert repo.assets_defs_by_key[ASSET_KEY].group_names_by_key[ASSET_KEY] == "platform"
    policy = repo.asset_graph.get(ASSET_KEY).freshness_policy
    assert policy is not None and policy.fail_window.to_timedelta().total_seconds() == 20 * 60


def test_error_text_in_the_report_and_checks_cannot_add_links_or_images():
    """Regression (issue #16): a failing sensor's message (which can quote agent text) went into
    the report table and the check description as it was: links, images, broken cells."""
    detail = "latest tick failed: ValueError: agent [x](http://evil.example) sent <img src=x> | a\nb"
    checks = [Check("schedules_and_sensors", False, detail), Check("database", True, "PostgreSQL 16")]
    report = _metadata(checks, {})["report"].value
    (evaluation,) = [e for e in _evaluations(checks) if e.check_name == "schedules_and_sensors"]
    assert live_markup(report) == [] and live_markup(evaluation.description) == []
    rows = [[c.replace(ZERO_WIDTH_SPACE, "") for c in r] for r in table_rows(report)]
    assert rows == [["schedules_and_sensors", "FAIL", " ".join(detail.split())], ["database", "pass", "PostgreSQL 16"]]
