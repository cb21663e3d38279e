"""task_queue_sensor: the queue's report (and the fleet file's drift) every 5 minutes, as events,
without starting a run.

Five minutes, not seconds: a tick costs about 30 ms of CPU across the daemon, the code server
and PostgreSQL (docs/BENCHMARKS.md), and what needs to be fast is already fast elsewhere (a down
agent's tasks are released by the health evaluation, an expired lease by the next claim, a dead
letter's alert is opened when it dies and sent by the health sensor). The plots need a trend,
not a live view.
"""

import dagster as dg

from agents_pipeline.defs.coordination import fleet_config
from agents_pipeline.defs.coordination.assets import evaluate
from agents_pipeline.defs.coordination.report import ASSET_KEY
from agents_pipeline.platform.resources import PostgresResource


@dg.sensor(
    name="task_queue_sensor",
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reports the task queue on task_queue (materialization and its two checks) and the fleet "
                "file's drift on fleet_config every 5 minutes without starting a run, and resolves task_dead "
                "alerts whose dead letters are gone.",
)
def task_queue_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    metadata, evaluations = evaluate(postgres)
    fleet_meta, fleet_check = fleet_config.evaluate(postgres)
    return dg.SensorResult(asset_events=[dg.AssetMaterialization(asset_key=ASSET_KEY, metadata=metadata),
                                         *evaluations,
                                         dg.AssetMaterialization(asset_key=fleet_config.ASSET_KEY, metadata=fleet_meta),
                                         fleet_check])
