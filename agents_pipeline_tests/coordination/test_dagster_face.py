"""The Dagster face of the task queue: the task_queue asset's numbers, tables and checks (passing
and failing), the sensor that reports them without a run, and dead_letter_job from the Launchpad."""

from __future__ import annotations

import dagster as dg
import pytest

from agents_pipeline.core import registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.defs.coordination import dead_letters
from agents_pipeline.defs.coordination.assets import task_queue
from agents_pipeline.defs.coordination.jobs import dead_letter_job
from agents_pipeline.defs.coordination.sensors import task_queue_sensor
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.coordination.conftest import Fleet
from agents_pipeline_tests.run_errors import failure_text


@pytest.fixture
def postgres(db_env: str) -> PostgresResource:
    return PostgresResource(url=db_env)


def _queue(state: SharedState, database: Database, fleet: Fleet) -> dict[str, list[int]]:
    """Kind 'summarise': 4 ready (the oldest 10 minutes old), 1 backing off, 1 claimed, 2 done and 1
    failed lately. Kind 'render': 1 claimed."""
    for name in ("producer", "worker"):
        registry.register_agent(database, name)
    ids = {k: [state.submit_task(k, {"i": i}, agent="producer") for i in range(n)]
           for k, n in (("render", 1), ("summarise", 8))}
    s = ids["summarise"]
    fleet.sql("UPDATE fleet.tasks SET run_after = now() - interval '10 minutes' WHERE task_id = %s", (s[7],))
    claimed = {t.task_id: t for t in state.claim_tasks(None, 5, 60, agent="worker")}   # render, s[0..3]
    assert sorted(claimed) == sorted([ids["render"][0], *s[:4]])
    state.complete(claimed[s[0]], {"ok": 0})
    state.complete(claimed[s[1]], {"ok": 1})
    state.fail(claimed[s[2]], "transient")                                # backing off for 5 s or more
    return ids


def test_the_asset_plots_each_kind_and_passes_while_nothing_is_stuck_or_dead(postgres, state, database, fleet):
    _queue(state, database, fleet)
    with dg.instance_for_test() as instance:
        result = dg.materialize([task_queue], resources={"postgres": postgres}, instance=instance)
    (mat,) = result.asset_materializations_for_node("task_queue")
    meta = {k: v.value for k, v in mat.metadata.items()}
    assert (meta["tasks_ready"], meta["tasks_scheduled"], meta["tasks_claimed"]) == (4, 1, 2)
    assert (meta["depth:summarise"], meta["depth:render"]) == (4, 0)
    assert 600 <= meta["oldest_ready_age_s"] < 660 and meta["oldest_ready_age_s:summarise"] == meta["oldest_ready_age_s"]
    assert meta["throughput_per_min:summarise"] == pytest.approx(2 / 5)   # 2 done in the 5-minute window
    assert (meta["failures:summarise"], meta["failures"], meta["dead_letters"], meta["tasks_stuck"]) == (1, 1, 0, 0)
    rows = {r.data["kind"]: r.data for r in mat.metadata["per_kind"].records}
    assert rows["summarise"] == {"kind": "summarise", "ready": 4, "scheduled": 1, "oldest_ready_age_s": meta["oldest_ready_age_s"],
                                 "claimed": 1, "stuck": 0, "done_5m": 2, "failures_5m": 1, "dead": 0}
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"no_tasks_stuck_past_lease": True, "no_dead_letters": True}


def test_the_sensor_warns_on_a_stuck_task_and_on_dead_letters(postgres, state, database, fleet, tmp_path,
                                                              monkeypatch):
    no_file = tmp_path / "fleet.yaml"
    monkeypatch.setenv("AGENTS_PIPELINE_FLEET_FILE", str(no_file))
    ids = _queue(state, database, fleet)
    (task,) = [t for t in state.claim_tasks(None, 5, 60, agent="worker") if t.task_id == ids["summarise"][5]]
    fleet.sql("UPDATE fleet.tasks SET max_attempts = 1 WHERE task_id = %s", (task.task_id,))
    assert state.fail(task, "poison <b>input</b>") == "dead"
    # The render task's lease ran out 5 minutes ago and nobody claimed since (a claim would release it).
    fleet.sql("UPDATE fleet.tasks SET lease_until = now() - interval '5 minutes' WHERE task_id = %s",
              (ids["render"][0],))
    with dg.build_sensor_context(resources={"postgres": postgres}) as context:
        result = task_queue_sensor(context)
    events = {key: [e for e in result.asset_events if e.asset_key == dg.AssetKey(key)]
              for key in ("task_queue", "fleet_config")}
    assert len(result.asset_events) == 5
    materialization, *checks = events["task_queue"]
    assert isinstance(materialization, dg.AssetMaterialization)
    assert materialization.metadata["dead_letters"].value == 1
    (dead,) = materialization.metadata["dead_letter_tasks"].value.records
    assert (dead.data["task_id"], dead.data["last_error"], dead.data["last_holder"]) == (
        task.task_id, "poison <b>input</b>", "worker")
    (stuck,) = materialization.metadata["stuck_tasks"].value.records
    assert (stuck.data["task_id"], stuck.data["holder"], stuck.data["kind"]) == (ids["render"][0], "worker", "render")
    assert 290 < stuck.data["overdue_s"] < 330
    by_name = {c.check_name: c for c in checks}
    assert not by_name["no_tasks_stuck_past_lease"].passed
    assert by_name["no_tasks_stuck_past_lease"].severity == dg.AssetCheckSeverity.WARN
    assert by_name["no_tasks_stuck_past_lease"].description.startswith("1 task(s) past their lease")
    assert "render" in by_name["no_tasks_stuck_past_lease"].description
    assert not by_name["no_dead_letters"].passed
    assert "1 dead letter(s) of kind(s) summarise" in by_name["no_dead_letters"].description
    fleet_materialization, fleet_check = events["fleet_config"]     # no fleet file here: nothing to compare
    assert fleet_materialization.metadata["fleet_file"].value == str(no_file)
    assert fleet_check.passed and fleet_check.description.startswith("no fleet file at")


def test_dead_letter_job_requeues_and_drops_and_resolves_the_alert(postgres, state, database, fleet):
    registry.register_agent(database, "producer")
    registry.register_agent(database, "worker")
    ids = [state.submit_task(kind, max_attempts=1, agent="producer") for kind in ("mail", "mail", "fax")]
    for task in state.claim_tasks(None, 3, 60, agent="worker"):
        state.fail(task, "no route")
    assert fleet.sql("SELECT alert_key FROM fleet.alerts WHERE resolved_at IS NULL ORDER BY 1") == [
        ("task_dead:fax",), ("task_dead:mail",)]
    resources = {"postgres": postgres}
    with dg.instance_for_test() as instance:
        refused = dead_letter_job.execute_in_process(
            run_config={"ops": {"handle_dead_letters": {"config": {"action": "drop"}}}},
            resources=resources, instance=instance, raise_on_error=False)
        assert not refused.success
        assert "drop needs a kind or task ids" in failure_text(refused)
        requeued = dead_letter_job.execute_in_process(
            run_config={"ops": {"handle_dead_letters": {"config": {"action": "requeue", "kind": "mail"}}}},
            resources=resources, instance=instance)
        assert requeued.output_for_node("handle_dead_letters") == {"action": "requeue", "task_ids": ids[:2]}
        (mat,) = requeued.asset_materializations_for_node("handle_dead_letters")
        assert mat.metadata["dead_letters"].value == 1                # the fax is still dead
    assert fleet.sql("SELECT alert_key FROM fleet.alerts WHERE resolved_at IS NULL") == [("task_dead:fax",)]
    with postgres.begin() as conn:                                    # what the job's op calls
        dropped = dead_letters.handle(conn, "drop", task_ids=[ids[2]], channels=["log"])
    assert (dropped.task_ids, dropped.kinds, dropped.alerts_resolved, dropped.dead_left) == ([ids[2]], ["fax"], 1, 0)
    assert fleet.sql("SELECT task_id, state, attempts FROM fleet.tasks ORDER BY task_id") == [
        (ids[0], "ready", 0), (ids[1], "ready", 0)]
    assert fleet.sql("SELECT alert_key FROM fleet.alerts WHERE resolved_at IS NULL") == []
    # The requeued tasks run again, with a fresh budget.
    assert [t.attempt for t in state.claim_tasks(None, 5, 60, agent="worker")] == [1, 1]
