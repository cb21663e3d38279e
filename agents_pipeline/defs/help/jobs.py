"""A Launchpad job to ask the help: it queues the question; help_requests_sensor answers it."""

import time

import dagster as dg
from pydantic import Field

from agents_pipeline.defs.help import request_store
from agents_pipeline.platform.resources import PostgresResource


class HelpQuestionConfig(dg.Config):
    question: str = Field(description='the question, e.g. "why is demo down?"')
    agent: str | None = Field(default=None, description="an agent the question is about")
    wait_s: int = Field(default=90, ge=0, le=600,
                        description="seconds to wait for the sensor's answer and log it (0: just queue)")


@dg.op(description="Queues a help request and logs its answer once help_requests_sensor has given it.")
def ask_help(context: dg.OpExecutionContext, config: HelpQuestionConfig, postgres: PostgresResource) -> int:
    db = postgres.database(maxconn=1)
    try:
        request_id = request_store.submit(db, config.question, agent=config.agent,
                                          requested_by=f"launchpad:{context.run_id[:8]}")
        context.log.info("help request %s queued", request_id)
        deadline = time.monotonic() + config.wait_s
        row = request_store.get(db, request_id)
        while row and row["status"] in ("pending", "claimed") and time.monotonic() < deadline:
            time.sleep(2)
            row = request_store.get(db, request_id)
        if row and row["status"] == "answered":
            context.log.info("answer (%s):\n%s", row["answer_mode"], row["answer"])
        elif row and row["status"] == "failed":
            raise dg.Failure(f"help request {request_id} failed: {row['error']}")
        else:
            context.log.info("help request %s is still %s; see the help_answers asset",
                             request_id, row["status"] if row else "missing")
        return request_id
    finally:
        db.close()


@dg.job(description="Ask the help from the Launchpad: the question is typed config.",
        tags={"domain": "help", "agents_pipeline/job": "help_request_job", "agents_pipeline/kind": "light"})
def help_request_job():
    ask_help()
