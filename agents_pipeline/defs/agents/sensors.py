"""Keeps every agent's story page current without launching runs.

Each tick (every minute) adds a partition for each new agent, then reports ``agent_story``
materializations for the agents whose status, registration or alerts changed since the last
tick, plus the next few agents in name order (round robin), so CPU, LLM and heartbeat figures
of quiet agents are at most ``ceil(fleet / ROUND_ROBIN) `` minutes old (20 at 1,000 agents).
At most MAX_PER_TICK stories a tick, read in batches of a handful of statements each.
"""


import json
from datetime import UTC, datetime, timedelta

import dagster as dg

from agents_pipeline.defs.agents.assets import AGENT_PARTITIONS, agent_story, valid_partition_key
from agents_pipeline.defs.agents.report import story_metadata
from agents_pipeline.defs.agents.story import agents_after, all_agent_names, changed_agents, read_stories
from agents_pipeline.platform.resources import PostgresResource

INTERVAL_S = 60
MAX_PER_TICK = 200
ROUND_ROBIN = 50
BATCH = 100


@dg.sensor(
    name="agent_story_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    asset_selection=[agent_story],
    description=(f"Adds an agent_story partition per new agent and refreshes the stories of the agents that "
                 f"changed, plus {ROUND_ROBIN} more in turn, every {INTERVAL_S} s (at most {MAX_PER_TICK} a tick), "
                 "reporting the materializations without launching runs."),
)
def agent_story_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    cursor = json.loads(context.cursor) if context.cursor else {}
    started = datetime.now(UTC)
    # The first tick has no "since": every agent counts as changed (bounded by MAX_PER_TICK).
    since = datetime.fromisoformat(cursor["since"]) if "since" in cursor else started - timedelta(days=36500)
    with postgres.begin() as conn:
        names = all_agent_names(conn)
        known = set(context.instance.get_dynamic_partitions(AGENT_PARTITIONS.name))
        new = [n for n in names if n not in known and valid_partition_key(n)]
        skipped = [n for n in names if not valid_partition_key(n)]
        if new:
            context.instance.add_dynamic_partitions(AGENT_PARTITIONS.name, new)
        ids = changed_agents(conn, since, MAX_PER_TICK, cursor.get("changed_after", 0))
        catching_up = len(ids) == MAX_PER_TICK   # more changed than a tick takes: next tick goes on from here
        turn: list[tuple[int, str]] = []
        if not catching_up:
            turn = agents_after(conn, cursor.get("after", ""), ROUND_ROBIN)
            if len(turn) < ROUND_ROBIN:        # wrapped around the fleet
                turn += agents_after(conn, "", ROUND_ROBIN - len(turn))
        ids = list(dict.fromkeys([*ids, *(agent_id for agent_id, _ in turn)]))[:MAX_PER_TICK]
        stories = [s for i in range(0, len(ids), BATCH) for s in read_stories(conn, ids[i:i + BATCH])]
    if skipped:
        context.log.warning("%d agent name(s) cannot be partition keys (they contain '...', ',' or a control "
                            "character) and have no story page", len(skipped))
    events = [dg.AssetMaterialization(asset_key=agent_story.key, partition=s.name, metadata=story_metadata(s))
              for s in stories if valid_partition_key(s.name)]
    if catching_up:
        # The pass over the changed agents ends later; what changes meanwhile counts from now.
        next_cursor = {**cursor, "since": since.isoformat(), "changed_after": ids[-1],
                       "next_since": cursor.get("next_since", started.isoformat())}
    else:
        next_cursor = {"since": cursor.get("next_since", started.isoformat()),
                       "after": turn[-1][1] if turn else ""}
    return dg.SensorResult(asset_events=events, cursor=json.dumps(next_cursor))
