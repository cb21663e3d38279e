"""Sensors: cheap SQL every tick, work only when there is some, reported without a run."""

import json

import dagster as dg

from agents_pipeline.core.replica import read_url
from agents_pipeline.defs.help import knowledge, request_store, service
from agents_pipeline.defs.help.assets import (
    answers_metadata,
    help_answers,
    knowledge_base,
    knowledge_metadata,
)
from agents_pipeline.defs.help.resources import HelpLLMResource
from agents_pipeline.platform.resources import PostgresResource

# A tick must end inside Dagster's 60 s sensor timeout, LLM calls included.
TICK_BUDGET_S = 40.0
SENSOR_AGENT = "agents-pipeline:help-requests-sensor"
# Queued requests wait at most this long; `agents-pipeline help ask` answers at once. Every tick
# costs about 30 ms of CPU in the daemon, the code server and PostgreSQL, found work or not.
REQUESTS_INTERVAL_S = 30


@dg.sensor(
    minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reloads the knowledge base when the docs on disk differ from what the database holds "
                "(compares content hashes; a few small files and one row per tick).",
)
def knowledge_base_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource):
    db = postgres.database(maxconn=1)
    try:
        report = knowledge.refresh(db)
        if report is None:
            return dg.SkipReason("documentation unchanged")
        return dg.SensorResult(asset_events=[dg.AssetMaterialization(
            asset_key=knowledge_base.key, metadata=knowledge_metadata(report, db),
            description="reloaded by knowledge_base_sensor")])
    finally:
        db.close()


@dg.sensor(
    minimum_interval_seconds=REQUESTS_INTERVAL_S, default_status=dg.DefaultSensorStatus.RUNNING,
    description="Answers help requests (SharedState.submit_help_request, help_request_job): claims them "
                "with FOR UPDATE SKIP LOCKED and a lease, answers, and reports help_answers.",
)
def help_requests_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource,
                         help_llm: HelpLLMResource):
    db = postgres.database(maxconn=1)
    read_db = postgres.read_database(maxconn=1) if read_url() else None
    try:
        request_store.heartbeat_worker(db, SENSOR_AGENT, period_s=60, grace_s=120)
        before = request_store.counts(db)
        drained = None
        if before["pending"] or before["claimed"]:
            drained = service.drain(db, service.worker_name("sensor"), llm=help_llm.settings(),
                                    budget_s=TICK_BUDGET_S, read_db=read_db)
        counts = request_store.counts(db)
        cursor = json.dumps(counts, sort_keys=True)
        if drained is None or not (drained.answered or drained.failed):
            if cursor == context.cursor:
                return dg.SkipReason("no help requests to answer")
        return dg.SensorResult(cursor=cursor, asset_events=[dg.AssetMaterialization(
            asset_key=help_answers.key, metadata=answers_metadata(db, drained),
            description="answered by help_requests_sensor")])
    finally:
        db.close()
        if read_db is not None:
            read_db.close()
