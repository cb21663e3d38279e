"""The code location the deployment test serves with `dagster api grpc`: the product's whole
location (its jobs, sensors and schedules, under its own name) plus a few small jobs and a
sensor whose timing the test controls.

The product's jobs finish too fast, or need too much, to show a queue, a limit or a crash
deterministically; these jobs carry the same tags as the product's (`agents_pipeline/job`,
`agents_pipeline/kind`), so deploy/dagster.yaml's limits treat them exactly alike.

``hold`` waits until a gate file exists (or ``seconds`` have passed), after writing the run
worker's process id to ``<DEPLOY_TEST_DIR>/<run id>.pid``: the test decides when a run ends and
which process to kill, with no sleep-and-hope.
"""

# No `from __future__ import annotations`: Dagster reads the op's config class from its annotation.
import os
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from agents_pipeline import (
    definitions as product,  # the module: a second Definitions at module scope is refused
)

TEST_DIR = "DEPLOY_TEST_DIR"
PROBE_INTERVAL_S = 5


class HoldConfig(dg.Config):
    seconds: float = Field(default=2.0, description="hold at least this long")
    gate: str | None = Field(default=None, description="then also until this file exists")
    timeout_s: float = Field(default=240.0, description="fail after this long")


@dg.op
def hold(context: dg.OpExecutionContext, config: HoldConfig) -> None:
    folder = Path(os.environ[TEST_DIR])
    (folder / f"{context.run_id}.pid").write_text(str(os.getpid()))
    started = time.monotonic()
    while time.monotonic() - started < config.seconds or (config.gate and not Path(config.gate).exists()):
        if time.monotonic() - started > config.timeout_s:
            raise dg.Failure(f"gate {config.gate} never opened")
        time.sleep(0.2)


@dg.op
def reject_bad_data() -> None:
    raise dg.Failure(description="row 7: cpu_percent is -3 (a step that failed on its data)")


def _tags(name: str, kind: str) -> dict[str, str]:
    return {"agents_pipeline/job": name, "agents_pipeline/kind": kind}


@dg.job(tags=_tags("deploy_bulk_a_job", "bulk"), executor_def=dg.in_process_executor)
def deploy_bulk_a_job() -> None:
    hold()


@dg.job(tags=_tags("deploy_bulk_b_job", "bulk"), executor_def=dg.in_process_executor)
def deploy_bulk_b_job() -> None:
    hold()


@dg.job(tags=_tags("deploy_light_job", "light"), executor_def=dg.in_process_executor)
def deploy_light_job() -> None:
    hold()


@dg.job(tags=_tags("deploy_crash_job", "light"), executor_def=dg.in_process_executor)
def deploy_crash_job() -> None:
    hold()


@dg.job(tags=_tags("deploy_bad_data_job", "light"), executor_def=dg.in_process_executor)
def deploy_bad_data_job() -> None:
    reject_bad_data()


@dg.sensor(minimum_interval_seconds=PROBE_INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING)
def deploy_probe_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Counts its own ticks in its cursor: a cursor lost in a restart would start again at 1."""
    count = int(context.cursor or 0) + 1
    return dg.SensorResult(skip_reason=f"tick {count}", cursor=str(count))


defs = dg.Definitions.merge(product.defs, dg.Definitions(
    jobs=[deploy_bulk_a_job, deploy_bulk_b_job, deploy_light_job, deploy_crash_job, deploy_bad_data_job],
    sensors=[deploy_probe_sensor],
))
