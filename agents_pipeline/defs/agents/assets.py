"""The ``agent_story`` asset: one dynamic partition per agent, so each agent has its own page.

Open it from the asset catalog (``agent_story``), its *Partitions* tab, then the agent: three
clicks to "what happened to agent X" (status changes with reasons, heartbeat gaps, CPU and
memory by hour, LLM tokens and cost by day, open alerts, tasks). The fleet pages carry only
fleet-level plots and top-N tables, so at 1,000 agents no page has more than a few dozen
plots; here the numbers are plotted across agents (one point per partition).
"""


import dagster as dg
import sqlalchemy as sa

from agents_pipeline.defs.agents.report import story_metadata
from agents_pipeline.defs.agents.story import read_stories
from agents_pipeline.platform.resources import PostgresResource

AGENT_PARTITIONS = dg.DynamicPartitionsDefinition(name="agents")
# Dagster refuses these in partition keys (and a comma splits a key in the UI's partition
# selector); such an agent has no page, the sensor logs it.
INVALID_KEY_PARTS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0", ",")


def valid_partition_key(name: str) -> bool:
    return bool(name) and not any(part in name for part in INVALID_KEY_PARTS)


@dg.asset(
    name="agent_story",
    partitions_def=AGENT_PARTITIONS,
    group_name="agents",
    owners=["team:agents-platform"],
    kinds={"postgres"},
    description=(
        "One agent's story, one partition per agent: status changes with reasons, heartbeat gaps "
        "(last 6 h), CPU and memory by hour (24 h), LLM tokens and cost by day (14 days), open alerts "
        "and tasks. agent_story_sensor refreshes the agents that changed (and every agent in turn) "
        "without launching runs; materializing a partition here reads the same story once."
    ),
)
def agent_story(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    name = context.partition_key
    with postgres.begin() as conn:
        agent_id = conn.execute(sa.text("SELECT agent_id FROM fleet.agents WHERE name = :n"), {"n": name}).scalar()
        if agent_id is None:
            raise dg.Failure(description=f"no agent named {name[:200]!r} in fleet.agents", allow_retries=False)
        [story] = read_stories(conn, [agent_id])
    return dg.MaterializeResult(metadata=story_metadata(story))
