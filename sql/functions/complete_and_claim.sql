-- A worker's loop in one statement: completes the attempts it presents (fleet.complete_tasks_as)
-- and claims its next batch (fleet.claim_tasks_as), in one transaction, so a batch costs one round
-- trip and one durable commit instead of two. The completions are stored first; rows with
-- lost = true name the tasks this agent no longer held (only task_id is set), the others are
-- the claimed tasks as claim_tasks returns them (a rate-limit refusal is one row with only
-- retry_after_s set: the completions are stored all the same).
CREATE OR REPLACE FUNCTION fleet.complete_and_claim(
    p_agent text, p_proof bytea, p_task_ids bigint[], p_attempt_ids uuid[], p_results jsonb[],
    p_capabilities text[], p_limit integer, p_lease interval
) RETURNS TABLE (
    task_id bigint, attempt_id uuid, kind text, capability text, priority integer, payload jsonb,
    attempt integer, max_attempts integer, lease_until timestamptz, submitted_by text,
    created_at timestamptz, retry_after_s double precision, lost boolean
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);      -- once, for both halves
BEGIN
    RETURN QUERY
    SELECT l.l, NULL::uuid, NULL::text, NULL::text, NULL::integer, NULL::jsonb, NULL::integer, NULL::integer,
           NULL::timestamptz, NULL::text, NULL::timestamptz, NULL::double precision, true
    FROM fleet.complete_tasks_as(v_me, p_task_ids, p_attempt_ids, p_results) AS l(l);
    RETURN QUERY
    SELECT c.task_id, c.attempt_id, c.kind, c.capability, c.priority, c.payload, c.attempt, c.max_attempts,
           c.lease_until, c.submitted_by, c.created_at, c.retry_after_s, false
    FROM fleet.claim_tasks_as(v_me, p_agent, p_capabilities, p_limit, p_lease) c;
END;
$$;
