-- Sends one copy of a message to every agent an operator granted p_capability
-- (fleet.agents.capabilities), the sender excepted. Each copy is an ordinary direct message, claimed
-- and acknowledged with claim_messages and ack_message. Idempotent on p_client_id: each copy's
-- client id derives from it and the recipient, so a retried broadcast sends only the copies still
-- missing and draws nothing. Draws one 'messages' token per copy; more copies than the burst
-- allows is refused as a size (take_rate). Returns how many agents it was sent to.
CREATE OR REPLACE FUNCTION fleet.broadcast_message(
    p_agent text, p_proof bytea, p_capability text, p_type text, p_payload jsonb, p_client_id uuid
) RETURNS TABLE (recipients integer, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_from bigint := fleet.authenticate(p_agent, p_proof);
    v_to bigint[];
    v_retry double precision;
BEGIN
    IF NOT fleet.is_task_label(p_capability) THEN
        RAISE EXCEPTION 'a capability must be 1 to 200 letters, digits or _ . : / -, got %', quote_literal(left(p_capability, 60))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_type IS NULL OR octet_length(p_type) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'a message type must have 1 to 200 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(p_payload::text) > 262144 THEN
        RAISE EXCEPTION 'message payload larger than 256 KiB' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF p_client_id IS NULL THEN
        RAISE EXCEPTION 'a broadcast needs a client id' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    SELECT coalesce(array_agg(a.agent_id ORDER BY a.agent_id), '{}') INTO v_to
    FROM agents a
    WHERE p_capability = ANY (a.capabilities) AND a.agent_id <> v_from AND NOT a.placeholder;
    IF cardinality(v_to) = 0 THEN
        RETURN QUERY SELECT 0, NULL::double precision;
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM agent_messages m
                   WHERE m.client_id = ANY (ARRAY(SELECT md5(p_client_id::text || ':' || r)::uuid FROM unnest(v_to) r))
                     AND m.from_agent_id = v_from) THEN
        v_retry := fleet.take_rate(v_from, 'messages', cardinality(v_to));
        IF v_retry IS NOT NULL THEN
            RETURN QUERY SELECT NULL::integer, v_retry;
            RETURN;
        END IF;
    END IF;
    INSERT INTO agent_messages (client_id, from_agent_id, to_agent_id, message_type, payload)
    SELECT md5(p_client_id::text || ':' || r)::uuid, v_from, r, p_type, coalesce(p_payload, '{}'::jsonb)
    FROM unnest(v_to) r
    ON CONFLICT (client_id) DO NOTHING;
    RETURN QUERY SELECT cardinality(v_to), NULL::double precision;
END;
$$;
