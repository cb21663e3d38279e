-- The work of fleet.claim_tasks for an agent already authenticated (p_me, named p_agent in
-- errors), so that fleet.complete_and_claim authenticates once per call. Not SECURITY DEFINER
-- and never granted to agents: it trusts p_me.
-- The rules it holds are described in claim_tasks.sql.
CREATE OR REPLACE FUNCTION fleet.claim_tasks_as(
    p_me bigint, p_agent text, p_capabilities text[], p_limit integer, p_lease interval
) RETURNS TABLE (
    task_id bigint, attempt_id uuid, kind text, capability text, priority integer, payload jsonb,
    attempt integer, max_attempts integer, lease_until timestamptz, submitted_by text,
    created_at timestamptz, retry_after_s double precision
)
LANGUAGE plpgsql SET search_path = fleet, pg_temp
-- A generic plan: the custom plan that PL/pgSQL would otherwise make for each call cost more to
-- plan (0.12 ms) than the statement takes to run; ARRAY(...) below keeps the generic one an
-- index probe of the picked ids. No bitmap scans: without statistics (a queue filled since its
-- last ANALYZE) the planner read every ready task through a bitmap and sorted them, 2 ms a claim
-- at 5,000 ready (the queue benchmark ran at half speed), instead of 0.03 ms down tasks_ready_idx,
-- which already holds them in claim order.
SET plan_cache_mode = force_generic_plan
SET enable_bitmapscan = off
AS $$
#variable_conflict use_column
DECLARE
    v_me bigint := p_me;
    v_granted text[];
    v_caps text[];
    v_bad text;
    v_retry double precision;
    v_expired bigint[];
    v_expired_attempts uuid[];
BEGIN
    IF p_lease IS NULL OR p_lease <= interval '0' OR p_lease > interval '1 hour' THEN
        RAISE EXCEPTION 'a lease must be longer than 0 and at most 1 hour, got %', p_lease
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a claim takes 1 to 1000 tasks, got %', p_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(p_capabilities) > 100 THEN
        RAISE EXCEPTION 'a claim names at most 100 capabilities, got %', cardinality(p_capabilities)
            USING ERRCODE = 'program_limit_exceeded';
    END IF;
    SELECT a.capabilities INTO v_granted FROM agents a WHERE a.agent_id = v_me;
    v_caps := coalesce(p_capabilities, v_granted);
    SELECT c INTO v_bad FROM unnest(v_caps) c WHERE c IS NULL OR NOT (c = ANY (v_granted)) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'agent % has no capability %', quote_literal(p_agent), quote_literal(left(coalesce(v_bad, ''), 60))
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'an operator grants capabilities: agents-pipeline agents capabilities NAME CAPABILITY...';
    END IF;
    v_retry := fleet.take_rate(v_me, 'tasks');
    IF v_retry IS NOT NULL THEN
        RETURN QUERY SELECT NULL::bigint, NULL::uuid, NULL::text, NULL::text, NULL::integer, NULL::jsonb,
                            NULL::integer, NULL::integer, NULL::timestamptz, NULL::text, NULL::timestamptz, v_retry;
        RETURN;
    END IF;

    SELECT array_agg(e.task_id), array_agg(e.attempt_id) INTO v_expired, v_expired_attempts FROM (
        SELECT t.task_id, t.attempt_id FROM tasks t
        WHERE t.state = 'claimed' AND t.lease_until < now()
        ORDER BY t.lease_until LIMIT 100
    ) e;
    PERFORM fleet.release_tasks(v_expired, v_expired_attempts, 'released: its lease ran out', true);

    RETURN QUERY
    WITH claimed AS (
        UPDATE tasks t
        SET state = 'claimed', claimed_by = v_me, attempt_id = gen_random_uuid(), attempts = t.attempts + 1,
            claimed_at = now(), lease = p_lease, lease_until = now() + p_lease, renew_at = now() + p_lease / 2
        WHERE t.task_id = ANY (ARRAY(
            SELECT r.task_id FROM tasks r
            WHERE r.state = 'ready' AND r.run_after <= now()
              AND (r.capability IS NULL OR r.capability = ANY (v_caps))
            ORDER BY r.priority DESC, r.task_id
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED))      -- locked here: the UPDATE changes exactly these rows
        RETURNING t.*
    )
    SELECT c.task_id, c.attempt_id, c.kind, c.capability, c.priority, c.payload, c.attempts, c.max_attempts,
           c.lease_until, a.name, c.created_at, NULL::double precision
    FROM claimed c LEFT JOIN agents a ON a.agent_id = c.submitted_by
    ORDER BY c.priority DESC, c.task_id;
END;
$$;
