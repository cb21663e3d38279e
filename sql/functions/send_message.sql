-- Queues a message from an agent to another (p_to NULL: whichever agent claims it first).
-- Idempotent on p_client_id; a rate refusal comes back as retry_after_s, not as an exception.
DROP FUNCTION IF EXISTS fleet.send_message(text, text, text, text, jsonb, uuid);
DROP FUNCTION IF EXISTS fleet.send_message(text, bytea, text, text, jsonb, uuid);

CREATE FUNCTION fleet.send_message(
    p_agent text, p_proof bytea, p_to text, p_type text, p_payload jsonb, p_client_id uuid
) RETURNS TABLE (message_id bigint, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_from bigint := fleet.authenticate(p_agent, p_proof);
    v_to bigint;
    v_id bigint;
    v_retry double precision;
BEGIN
    IF p_type IS NULL OR octet_length(p_type) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'a message type must have 1 to 200 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(p_payload::text) > 262144 THEN
        RAISE EXCEPTION 'message payload larger than 256 KiB' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF p_to IS NOT NULL THEN
        SELECT a.agent_id INTO v_to FROM agents a WHERE a.name = p_to;
        IF v_to IS NULL THEN
            RAISE EXCEPTION 'unknown agent %', quote_literal(left(p_to, 200)) USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    SELECT m.message_id INTO v_id FROM agent_messages m WHERE m.client_id = p_client_id AND m.from_agent_id = v_from;
    IF v_id IS NOT NULL THEN
        RETURN QUERY SELECT v_id, NULL::double precision;     -- a retried send
        RETURN;
    END IF;
    v_retry := fleet.take_rate(v_from, 'messages');
    IF v_retry IS NOT NULL THEN
        RETURN QUERY SELECT NULL::bigint, v_retry;
        RETURN;
    END IF;
    INSERT INTO agent_messages (client_id, from_agent_id, to_agent_id, message_type, payload)
    VALUES (p_client_id, v_from, v_to, p_type, coalesce(p_payload, '{}'::jsonb))
    ON CONFLICT (client_id) DO NOTHING
    RETURNING agent_messages.message_id INTO v_id;
    IF v_id IS NULL THEN
        SELECT m.message_id INTO v_id FROM agent_messages m WHERE m.client_id = p_client_id AND m.from_agent_id = v_from;
        IF v_id IS NULL THEN
            RAISE EXCEPTION 'client id % belongs to another agent''s message', p_client_id USING ERRCODE = 'unique_violation';
        END IF;
    END IF;
    RETURN QUERY SELECT v_id, NULL::double precision;
END;
$$;
