-- Claims up to p_limit (1 to 1000) unacknowledged messages addressed to the agent (or to
-- anyone) whose lease is free, for a lease of at most one hour. SKIP LOCKED: two consumers
-- never claim the same message, and nobody waits on another's claim.
DROP FUNCTION IF EXISTS fleet.claim_messages(text, text, integer, interval);
DROP FUNCTION IF EXISTS fleet.claim_messages(text, bytea, integer, interval);

CREATE FUNCTION fleet.claim_messages(p_agent text, p_proof bytea, p_limit integer, p_lease interval)
RETURNS TABLE (message_id bigint, from_agent text, message_type text, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
BEGIN
    IF p_lease IS NULL OR p_lease <= interval '0' OR p_lease > interval '1 hour' THEN
        RAISE EXCEPTION 'a lease must be longer than 0 and at most 1 hour, got %', p_lease
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'a claim takes 1 to 1000 messages, got %', p_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
    WITH picked AS (
        SELECT m.message_id FROM agent_messages m
        WHERE m.acked_at IS NULL
          AND (m.to_agent_id = v_me OR m.to_agent_id IS NULL)
          AND (m.lease_until IS NULL OR m.lease_until < now())
        ORDER BY m.message_id
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE agent_messages m
        SET claimed_by = v_me, claimed_at = now(), lease_until = now() + p_lease
        FROM picked WHERE m.message_id = picked.message_id
        RETURNING m.message_id, m.from_agent_id, m.message_type, m.payload, m.created_at
    )
    SELECT c.message_id, a.name, c.message_type, c.payload, c.created_at
    FROM claimed c LEFT JOIN agents a ON a.agent_id = c.from_agent_id
    ORDER BY c.message_id;
END;
$$;
