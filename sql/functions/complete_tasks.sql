-- Completes several of the agent's current attempts in one statement (1 to 1000; results at
-- most 256 KiB each, 8 MiB in all): what complete_task does for one, set-based, so that a worker
-- finishing a batch pays one round trip and one authentication rather than one per task.
-- Returns the ids of the tasks this agent no longer held (as complete_task's false): their
-- lease ran out and they were claimed again, or their agent was marked down. A task this very
-- attempt completed already (a retried call whose commit was lost) is not among them.
CREATE OR REPLACE FUNCTION fleet.complete_tasks(
    p_agent text, p_proof bytea, p_task_ids bigint[], p_attempt_ids uuid[], p_results jsonb[]
) RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM fleet.complete_tasks_as(fleet.authenticate(p_agent, p_proof), p_task_ids, p_attempt_ids, p_results);
END;
$$;
