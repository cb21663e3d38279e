"""dead_letter_job: requeue or drop dead letters from the Launchpad (typed config).

A side effect on demand, not an asset computation, so an op job; what it did is its output
metadata and a fresh report of task_queue.
"""

import enum

import dagster as dg
from pydantic import Field

from agents_pipeline.defs.alerts.channels import configured_channels
from agents_pipeline.defs.coordination import dead_letters, queue, report
from agents_pipeline.platform.resources import PostgresResource


class DeadLetterAction(enum.Enum):
    requeue = "requeue"
    drop = "drop"


class DeadLetterConfig(dg.Config):
    """What the Launchpad asks for."""

    action: DeadLetterAction = Field(description="requeue: ready again with a fresh attempt budget; "
                                                 "drop: deleted (needs a kind or task ids)")
    kind: str | None = Field(default=None, description="only dead letters of this task kind")
    task_ids: list[int] = Field(default_factory=list, description="only these tasks (empty: any)")
    limit: int = Field(default=1000, ge=1, le=10_000, description="at most this many, oldest first")


@dg.op(description="Requeues or drops dead-lettered tasks and resolves the task_dead alerts of kinds left "
                   "without any.", tags={"domain": "coordination"})
def handle_dead_letters(context: dg.OpExecutionContext, config: DeadLetterConfig,
                        postgres: PostgresResource) -> dg.Output:
    from agents_pipeline.core.errors import ValidationError

    try:
        with postgres.begin() as conn:
            done = dead_letters.handle(conn, config.action.value, kind=config.kind, task_ids=config.task_ids,
                                       limit=config.limit, channels=configured_channels())
            state = queue.report(conn)
    except ValidationError as exc:
        raise dg.Failure(description=str(exc)) from None
    context.log.info(f"{done.action}: {len(done.task_ids)} dead letter(s) of kind(s) {', '.join(done.kinds) or '-'}; "
                     f"{done.dead_left} left; {done.alerts_resolved} alert(s) resolved")
    context.log_event(dg.AssetMaterialization(asset_key=report.ASSET_KEY, metadata=report.metadata(state),
                                              description=f"after dead_letter_job ({done.action})"))
    for evaluation in report.checks(state):
        context.log_event(evaluation)
    metadata = {"action": done.action, "tasks": len(done.task_ids), "dead_letters_left": done.dead_left,
                "alerts_resolved": done.alerts_resolved, "task_ids": dg.MetadataValue.json(done.task_ids[:1000])}
    return dg.Output({"action": done.action, "task_ids": done.task_ids}, metadata=metadata)


@dg.job(description="Requeue or drop dead-lettered tasks (Launchpad config: action, kind, task_ids, limit).",
        tags={"agents_pipeline/job": "dead_letter_job", "agents_pipeline/kind": "light"})
def dead_letter_job() -> None:
    handle_dead_letters()
