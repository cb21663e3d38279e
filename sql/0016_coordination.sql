-- 0016: fleet as code, agents' lifecycle states and the retention of finished tasks (issue #18).
-- `agents-pipeline fleet apply FILE` makes the registry match a fleet.yaml in one transaction
-- (agents_pipeline/defs/coordination/fleet_sync.py).
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

-- Finished tasks are archived and removed by day past retention (defs/retention/policy.py, table
-- 'tasks', 30 days by default): this index finds a day's done and failed tasks without reading
-- the queue's live rows (ready and claimed tasks have no finished_at).
CREATE INDEX tasks_finished_at_idx ON fleet.tasks (finished_at) WHERE finished_at IS NOT NULL;
ALTER TABLE fleet.archive_ledger DROP CONSTRAINT archive_ledger_table_name_check,
    ADD CONSTRAINT archive_ledger_table_name_check CHECK (table_name IN (
        'heartbeats', 'perf_samples', 'perf_rollups', 'status_changes', 'alerts', 'llm_runs', 'tasks'));
ALTER TABLE fleet.retention_holds DROP CONSTRAINT retention_holds_table_name_check,
    ADD CONSTRAINT retention_holds_table_name_check CHECK (table_name IN (
        'heartbeats', 'perf_samples', 'perf_rollups', 'status_changes', 'alerts', 'llm_runs', 'tasks'));

SELECT fleet.apply_security();
