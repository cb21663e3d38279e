-- Acknowledges a message the agent claimed; false when it holds no such claim.
DROP FUNCTION IF EXISTS fleet.ack_message(text, text, bigint);

CREATE OR REPLACE FUNCTION fleet.ack_message(p_agent text, p_proof bytea, p_message_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
BEGIN
    UPDATE agent_messages SET acked_at = coalesce(acked_at, now())
    WHERE message_id = p_message_id AND claimed_by = v_me;
    RETURN FOUND;
END;
$$;
