"""The Dagster face: definitions, the assets with and without a key, the sensor, the backfill job."""

from __future__ import annotations

import json
from datetime import timedelta

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value

from agents_pipeline.core.registry import register_agent
from agents_pipeline.definitions import load_domain
from agents_pipeline.defs.langsmith import assets, checks, jobs, sensors
from agents_pipeline.defs.langsmith.resources import LangSmithResource, langsmith_resource
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.langsmith.conftest import PROJECT

SECRET = "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"


@pytest.fixture(autouse=True)
def langsmith_env(request, monkeypatch) -> None:
    """The key and endpoint come from the environment only (a resource field that differs is
    refused): a test with the fake sets them to the fake's, any other clears the shell's."""
    for name in ("LANGSMITH_API_KEY", "LANGSMITH_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    if "fake" in request.fixturenames:
        fake = request.getfixturevalue("fake")
        monkeypatch.setenv("LANGSMITH_API_KEY", fake.api_key)
        monkeypatch.setenv("LANGSMITH_ENDPOINT", fake.url)


def _resources(db_url: str, fake=None, **overrides) -> dict:
    fields = {"projects": f"{PROJECT},agents-pipeline", "max_retries": 1, "backoff_factor": 0.01, **overrides}
    langsmith = LangSmithResource(api_key=fake.api_key, endpoint=fake.url, **fields) if fake else LangSmithResource()
    return {"postgres": PostgresResource(url=db_url), "langsmith": langsmith}


def _metadata(result: dg.ExecuteInProcessResult, key: str) -> dict:
    (mat,) = result.asset_materializations_for_node(key)
    return {k: v.value for k, v in mat.metadata.items()}


def test_definitions_snapshot():
    repo = dg.Definitions.merge(load_domain("langsmith"), dg.Definitions(resources={"postgres": PostgresResource(url="postgresql://x/y")})).get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    assert keys == {"llm_conversations", "langsmith_runs", "langsmith_pushed_conversations", "llm_usage_daily"}
    assert {j.name for j in repo.get_all_jobs()} >= {"langsmith_sync_job", "langsmith_backfill_job"}
    schedule = repo.get_schedule_def("langsmith_sync_schedule")
    assert (schedule.cron_schedule, schedule.job_name, schedule.default_status) == (
        "*/15 * * * *", "langsmith_sync_job", dg.DefaultScheduleStatus.RUNNING)
    sensor = repo.get_sensor_def("llm_usage_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING and sensor.minimum_interval_seconds == 600
    for asset_key in ("langsmith_runs", "langsmith_pushed_conversations", "llm_usage_daily"):
        node = repo.asset_graph.get(dg.AssetKey(asset_key))
        assert node.group_name == "langsmith" and node.owners == ["team:agents-platform"] and node.description


def test_resource_without_key_in_environment(monkeypatch):
    for name in ("LANGSMITH_API_KEY", "LANGSMITH_PROJECTS", "LANGSMITH_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    assert not langsmith_resource().configured
    monkeypatch.setenv("LANGSMITH_API_KEY", SECRET)
    monkeypatch.setenv("LANGSMITH_PROJECT", "solo")
    resource = langsmith_resource()
    assert isinstance(resource.api_key, dg.EnvVar) and resource.api_key.env_var_name == "LANGSMITH_API_KEY"


def test_without_a_key_the_assets_say_so_and_do_nothing(db_url):
    result = dg.materialize([assets.llm_conversations, assets.langsmith_runs, assets.langsmith_pushed_conversations],
                            resources=_resources(db_url), instance=dg.DagsterInstance.ephemeral())
    assert result.success
    for key in ("langsmith_runs", "langsmith_pushed_conversations"):
        meta = _metadata(result, key)
        assert meta["configured"] is False and "LANGSMITH_API_KEY is not set" in meta["status"]
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM fleet.sync_cursors")).scalar() == 0
    engine.dispose()


def test_sync_job_pulls_pushes_and_the_sensor_counts_each_call_once(fake, db_url, database, state, now):
    register_agent(database, "writer")
    run = fake.add_run(PROJECT, start_time=now - timedelta(minutes=10), end_time=now - timedelta(minutes=9),
                       prompt_tokens=10, completion_tokens=2, cost=0.5, model="gpt-4o", metadata={"agent": "writer"})
    conv = state.record_conversation("hi", "hello", model="gpt-4o", prompt_tokens=3, completion_tokens=1,
                                     agent="writer", created_at=now - timedelta(minutes=1))
    resources = _resources(db_url, fake)
    with dg.instance_for_test() as instance:
        first = dg.materialize([assets.llm_conversations, assets.langsmith_runs, assets.langsmith_pushed_conversations],
                               resources=resources, instance=instance, selection=["langsmith_pushed_conversations"])
        assert _metadata(first, "langsmith_pushed_conversations")["sent"] == 1
        second = dg.materialize([assets.llm_conversations, assets.langsmith_runs, assets.langsmith_pushed_conversations],
                                resources=resources, instance=instance, selection=["langsmith_runs"])
        meta = _metadata(second, "langsmith_runs")
        assert (meta["runs_inserted"], meta["projects_failed"]) == (2, 0)  # the run, and the pushed conversation
        engine = sa.create_engine(db_url)
        with engine.begin() as conn:
            pulled = {str(r[0]) for r in conn.execute(sa.text("SELECT run_id FROM fleet.llm_runs"))}
        engine.dispose()
        assert pulled == {run["id"], str(conv)}
        with dg.build_sensor_context(instance=instance, resources={"postgres": resources["postgres"]}) as context:
            tick = sensors.llm_usage_sensor(context)
        # The run (10 min ago) and the conversation (1 min ago) fall on two UTC days just after midnight.
        days = {(now - timedelta(minutes=10)).date().isoformat(), (now - timedelta(minutes=1)).date().isoformat()}
        reported = [e for e in tick.asset_events if e.partition in days]
        assert sorted(e.partition for e in reported) == sorted(days)
        totals = [sum(e.metadata[k].value for e in reported) for k in ("runs", "prompt_tokens", "cost_usd")]
        assert totals == [2, 13, 0.5]
        with dg.build_sensor_context(instance=instance, cursor=tick.cursor,
                                     resources={"postgres": resources["postgres"]}) as context:
            again = sensors.llm_usage_sensor(context)
        assert again.asset_events == []  # unchanged figures: nothing reported
        assert fake.posted[str(conv)] == 1 and fake.duplicate_posts == 0


def test_backfill_job_reads_the_range_and_refreshes_usage(fake, db_url, now):
    day = (now - timedelta(days=3)).replace(hour=6, minute=0, second=0)
    fake.add_run(PROJECT, start_time=day, end_time=day + timedelta(seconds=2), prompt_tokens=5, completion_tokens=5,
                 model="m", metadata={"agent": "writer"})
    result = jobs.langsmith_backfill_job.execute_in_process(
        run_config={"ops": {"backfill_langsmith_runs": {"config": {"start": day.date().isoformat(),
                                                                   "end": (day.date() + timedelta(days=1)).isoformat()}}}},
        resources=_resources(db_url, fake), instance=dg.DagsterInstance.ephemeral())
    assert result.success
    mats = [e.event_specific_data.materialization for e in result.all_events if e.event_type_value == "ASSET_MATERIALIZATION"]
    assert [(m.partition, m.metadata["runs"].value) for m in mats] == [(day.date().isoformat(), 1)]
    bad = jobs.langsmith_backfill_job.execute_in_process(
        run_config={"ops": {"backfill_langsmith_runs": {"config": {"start": "2026-11-20", "end": "2026-11-19"}}}},
        resources=_resources(db_url, fake), instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not bad.success
    failure = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "must be before end" in failure.event_specific_data.error.message


@pytest.mark.parametrize("scenario", ["server_errors", "unreachable", "ingest_refused"])
def test_api_key_never_appears_in_logs_metadata_or_errors(scenario, fake, db_url, database, state, caplog, capfd, now,
                                                          monkeypatch):
    fake.api_key = SECRET
    monkeypatch.setenv("LANGSMITH_API_KEY", SECRET)
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=5), end_time=now)
    register_agent(database, "writer")
    state.record_conversation("secret-free prompt", "ok", agent="writer")
    overrides = {}
    if scenario == "server_errors":
        fake.fail("POST", "/runs/query", 500, times=100)
    elif scenario == "unreachable":
        overrides["endpoint"] = "http://127.0.0.1:9"
        monkeypatch.setenv("LANGSMITH_ENDPOINT", overrides["endpoint"])
    else:
        fake.fail("POST", "/runs/multipart", 400, times=100, body=json.dumps({"detail": f"bad header x-api-key: {SECRET}"}).encode())
        fake.fail("POST", "/runs", 400, times=100, body=json.dumps({"detail": f"echo {SECRET}"}).encode())
    resources = _resources(db_url, fake)
    if overrides:
        resources["langsmith"] = LangSmithResource(api_key=SECRET, projects=PROJECT, max_retries=1, backoff_factor=0.01, **overrides)
    caplog.set_level("DEBUG")
    with dg.instance_for_test() as instance:
        result = dg.materialize([assets.llm_conversations, assets.langsmith_runs, assets.langsmith_pushed_conversations],
                                resources=resources, instance=instance, raise_on_error=False)
        assert not result.success
        texts = [serialize_value(entry) for entry in instance.all_logs(result.run_id)]
        run_config = serialize_value(instance.get_run_by_id(result.run_id))
    failures = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failures and all(e.event_specific_data.error.message for e in failures)
    engine = sa.create_engine(db_url)
    with engine.begin() as conn:
        stored = conn.execute(sa.text("SELECT coalesce(string_agg(message, ' '), '') FROM fleet.alerts")).scalar()
        stored += conn.execute(sa.text("SELECT coalesce(string_agg(push_error, ' '), '') FROM fleet.llm_conversations")).scalar()
    engine.dispose()
    out, err = capfd.readouterr()
    haystack = "\n".join([*texts, run_config, caplog.text, out, err, stored])
    assert "LangSmith" in haystack  # the failure was recorded somewhere we searched
    for needle in (SECRET, SECRET[:12], SECRET[-12:]):
        assert needle not in haystack


def test_sync_current_check_passes_after_a_sync_and_fails_for_a_project_never_synced(fake, syncer, db_url, now,
                                                                                    monkeypatch):
    langsmith_sync_current = checks.langsmith_sync_current
    monkeypatch.setenv("LANGSMITH_API_KEY", "k")
    postgres = PostgresResource(url=db_url)
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=1), end_time=now)
    assert syncer(now).ok
    ok = langsmith_sync_current(postgres=postgres, langsmith=LangSmithResource(api_key="k", projects=PROJECT))
    assert ok.passed and ok.metadata["projects_behind"].value == 0
    behind = langsmith_sync_current(postgres=postgres, langsmith=LangSmithResource(api_key="k", projects=f"{PROJECT},never-synced"))
    assert not behind.passed and "never-synced" in behind.description and PROJECT not in behind.description
    monkeypatch.delenv("LANGSMITH_API_KEY")
    off = langsmith_sync_current(postgres=postgres, langsmith=LangSmithResource())
    assert off.passed and "not configured" in off.description


def test_scheduled_job_runs_both_assets_and_the_check_in_one_process(fake, db_url, now):
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=2), end_time=now, metadata={"agent": "writer"})
    defs = dg.Definitions(assets=[assets.llm_conversations, assets.langsmith_runs, assets.langsmith_pushed_conversations],
                          asset_checks=[checks.langsmith_sync_current],
                          jobs=[jobs.langsmith_sync_job], resources=_resources(db_url, fake))
    result = defs.resolve_job_def("langsmith_sync_job").execute_in_process(instance=dg.DagsterInstance.ephemeral())
    assert result.success
    keys = {e.event_specific_data.materialization.asset_key.to_user_string()
            for e in result.get_asset_materialization_events()}
    assert keys == {"langsmith_runs", "langsmith_pushed_conversations"}
    (check,) = [e.event_specific_data for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"]
    # fleet-prod synced just now; nothing was ever traced into the push project, so it is flagged
    assert not check.passed and check.description.endswith(": agents-pipeline")


def test_retries_and_results_reach_the_run_log(fake, db_url, now):
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=2), end_time=now)
    fake.fail("POST", "/runs/query", 429, times=1, headers={"Retry-After": "0"})
    with dg.instance_for_test() as instance:
        result = dg.materialize([assets.langsmith_runs], resources=_resources(db_url, fake, projects=PROJECT),
                                instance=instance)
        messages = [e.user_message for e in instance.all_logs(result.run_id)]
    assert _metadata(result, "langsmith_runs")["retries_rate_limited"] == 1
    assert any("POST /runs/query: rate limited (HTTP 429), retry 1" in m for m in messages)
    assert any(f"LangSmith sync of project '{PROJECT}': 1 runs read (1 new" in m for m in messages)
