-- Renews the lease of the agent's current attempt of a task: p_lease (at most 1 hour) from now,
-- or the lease it was claimed with. Returns the new lease end, NULL when the agent holds no such
-- attempt. Draws one token from the agent's 'tasks' bucket (a refusal: retry_after_s). An agent's
-- heartbeats renew its leases anyway (fleet.record_heartbeats); this is for work that outlasts
-- one lease between heartbeats.
CREATE OR REPLACE FUNCTION fleet.extend_task(
    p_agent text, p_proof bytea, p_task_id bigint, p_attempt_id uuid, p_lease interval
) RETURNS TABLE (lease_until timestamptz, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
SET lock_timeout = '2s'
AS $$
#variable_conflict use_column
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
    v_retry double precision;
    v_until timestamptz;
BEGIN
    IF p_lease <= interval '0' OR p_lease > interval '1 hour' THEN
        RAISE EXCEPTION 'a lease must be longer than 0 and at most 1 hour, got %', p_lease
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_retry := fleet.take_rate(v_me, 'tasks');
    IF v_retry IS NOT NULL THEN
        RETURN QUERY SELECT NULL::timestamptz, v_retry;
        RETURN;
    END IF;
    UPDATE tasks t
    SET lease_until = now() + coalesce(p_lease, t.lease), lease = coalesce(p_lease, t.lease),
        renew_at = now() + coalesce(p_lease, t.lease) / 2
    WHERE t.task_id = p_task_id AND t.attempt_id = p_attempt_id AND t.claimed_by = v_me AND t.state = 'claimed'
    RETURNING t.lease_until INTO v_until;
    RETURN QUERY SELECT v_until, NULL::double precision;
END;
$$;
