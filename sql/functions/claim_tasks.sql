-- Claims up to p_limit (1 to 1000) ready tasks for the agent, for a lease of at most one hour,
-- highest priority first, then oldest. p_capabilities (NULL: all the agent's) must be among the
-- capabilities an operator granted the agent (fleet.agents.capabilities); tasks without a
-- capability go to any agent. FOR UPDATE SKIP LOCKED: two agents never claim the same task and
-- nobody waits on another's claim. Each claimed task gets a new attempt id and counts an attempt.
--
-- First, up to 100 tasks whose lease ran out (their holder stopped heartbeating without being
-- marked down, or never heartbeats) are released, so this claim can take them at once.
-- One call draws one token from the agent's 'tasks' bucket; a refusal is one row with only
-- retry_after_s set.
CREATE OR REPLACE FUNCTION fleet.claim_tasks(
    p_agent text, p_proof bytea, p_capabilities text[], p_limit integer, p_lease interval
) RETURNS TABLE (
    task_id bigint, attempt_id uuid, kind text, capability text, priority integer, payload jsonb,
    attempt integer, max_attempts integer, lease_until timestamptz, submitted_by text,
    created_at timestamptz, retry_after_s double precision
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
BEGIN
    RETURN QUERY SELECT * FROM fleet.claim_tasks_as(fleet.authenticate(p_agent, p_proof), p_agent, p_capabilities, p_limit, p_lease);
END;
$$;
