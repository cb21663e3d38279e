-- 0016: fleet as code and agents' lifecycle states (issue #18, "Fleet as code", "The base agent"). `agents-pipeline fleet apply FILE` makes the
-- registry match a fleet.yaml in one transaction (agents_pipeline/defs/coordination/fleet_sync.py).
--
-- * fleet_managed: the agent was declared by a fleet file. Only such agents are candidates for
--   removal (`fleet apply --prune`): agents registered by hand and the pipeline's own agents are
--   reported as unmanaged and left alone, as Terraform touches only what is in its state.
-- * retired_at: a removed agent is retired, not deleted. Its history (status changes, alerts,
--   LLM runs, messages) references it, and deleting it would lose that history or fail on those
--   references; instead its token, login and ping key stop working, it is paused (no alerts) and
--   its capabilities are taken away. Declaring the name again brings it back with a new token.
-- * lifecycle: what the agent said of itself in its latest heartbeat that said anything
--   ({"lifecycle": "starting" | "running" | "draining" | "stopped"} in the payload, sent by
--   core.agent.Agent), kept by fleet.store_heartbeats in the update of the agent row every
--   heartbeat makes anyway, so the UI reads it without scanning heartbeats. NULL: never said
--   (shell pings, agents not using the Agent helper).
ALTER TABLE fleet.agents
    ADD COLUMN fleet_managed boolean NOT NULL DEFAULT false,
    ADD COLUMN retired_at timestamptz,
    ADD COLUMN lifecycle text CHECK (lifecycle IN ('starting', 'running', 'draining', 'stopped')),
    ADD COLUMN lifecycle_at timestamptz;

SELECT fleet.apply_security();
