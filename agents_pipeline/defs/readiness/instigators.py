"""Readiness of the Dagster side: the daemon is alive, every schedule and sensor of this code
location is running, and each one's latest tick and latest run did not fail.

Read straight from the instance's storage (the same PostgreSQL the daemon writes), so it works
from the CLI, from a run and from a sensor alike, with or without the webserver up. The names
and default statuses come from the repository definition; a schedule or sensor whose stored
state says nothing is running exactly when its default status says so (what the UI shows).
"""

from __future__ import annotations

from collections.abc import Iterable

import dagster as dg
from dagster._core.definitions.selector import InstigatorSelector, RepositorySelector
from dagster._core.scheduler.instigation import InstigatorState, InstigatorStatus, TickStatus
from dagster._core.storage.tags import SCHEDULE_NAME_TAG, SENSOR_NAME_TAG

from agents_pipeline.defs.readiness.checklist import Check

LOCATION_NAME = "agents_pipeline"
REPOSITORY_NAME = "__repository__"
_FAILED_RUN = {dg.DagsterRunStatus.FAILURE}


def daemon_check(instance: dg.DagsterInstance) -> Check:
    statuses = instance.get_daemon_statuses()
    unhealthy = sorted(t for t, s in statuses.items() if s.required and not s.healthy)
    if unhealthy:
        return Check("dagster_daemon", False,
                     f"daemon not heartbeating: {', '.join(unhealthy)} (is `dagster dev` or `dagster-daemon run` up?)",
                     {"daemons_unhealthy": len(unhealthy)})
    return Check("dagster_daemon", True, f"{len(statuses)} daemons healthy", {"daemons_unhealthy": 0})


def _instigators(repo: dg.RepositoryDefinition) -> Iterable[tuple[str, str, bool]]:
    """(kind, name, running by default) of every schedule and sensor in the repository."""
    for schedule in repo.schedule_defs:
        yield "schedule", schedule.name, schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    for sensor in repo.sensor_defs:
        yield "sensor", sensor.name, sensor.default_status == dg.DefaultSensorStatus.RUNNING


def _running(state: InstigatorState | None, default_running: bool) -> bool:
    if state is None or state.status == InstigatorStatus.DECLARED_IN_CODE:
        return default_running
    return state.status == InstigatorStatus.RUNNING


def instigator_checks(instance: dg.DagsterInstance, repo: dg.RepositoryDefinition,
                      location_name: str = LOCATION_NAME) -> list[Check]:
    """One check per schedule and sensor: running, latest tick not failed, latest run not failed.
    A schedule or sensor that has not ticked yet passes (the daemon check covers a dead daemon)."""
    repo_selector = RepositorySelector(location_name=location_name, repository_name=repo.name)
    states = {s.name: s for s in instance.all_instigator_state(repository_selector_id=repo_selector.selector_id)}
    checks = []
    for kind, name, default_running in _instigators(repo):
        state = states.get(name)
        selector_id = InstigatorSelector(location_name=location_name, repository_name=repo.name, name=name).get_id()
        origin_id = state.instigator_origin_id if state else ""
        problems = []
        if not _running(state, default_running):
            problems.append("stopped (start it in the UI: Automation)")
        ticks = instance.get_ticks(origin_id, selector_id, limit=1)
        tick = ticks[0] if ticks else None
        if tick is not None and tick.status == TickStatus.FAILURE:
            error = tick.error.message.strip().splitlines()[0] if tick.error else "no error recorded"
            problems.append(f"latest tick failed: {error}")
        tag = SCHEDULE_NAME_TAG if kind == "schedule" else SENSOR_NAME_TAG
        runs = instance.get_runs(dg.RunsFilter(tags={tag: name}), limit=1)
        if runs and runs[0].status in _FAILED_RUN:
            problems.append(f"latest run {runs[0].run_id[:8]} failed")
        tick_text = tick.status.value.lower() if tick else "no tick yet"
        run_text = runs[0].status.value.lower() if runs else "no run yet"
        detail = "; ".join(problems) or f"running, latest tick {tick_text}, latest run {run_text}"
        checks.append(Check(f"{kind}:{name}", not problems, detail))
    return checks


def dagster_checks(instance: dg.DagsterInstance, repo: dg.RepositoryDefinition | None,
                   location_name: str = LOCATION_NAME) -> list[Check]:
    """The daemon check, then one per schedule and sensor of ``repo`` (none without a repo)."""
    try:
        instigators = instigator_checks(instance, repo, location_name) if repo is not None else []
        return [daemon_check(instance), *instigators]
    except Exception as exc:  # storage unreachable: one failed check naming why
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return [Check("dagster_instance", False, f"cannot read the Dagster instance: {text}")]


def summarise(checks: list[Check]) -> Check:
    """Folds the daemon and per-instigator checks into one, for the asset check of that name."""
    failed = [c for c in checks if not c.passed]
    detail = "; ".join(f"{c.name}: {c.detail}" for c in failed) or f"{len(checks)} checks passed"
    return Check("schedules_and_sensors", not failed, detail,
                 {"instigators_checked": len(checks), "instigators_failing": len(failed)})
