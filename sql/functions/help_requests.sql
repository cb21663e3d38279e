-- Help requests from agents: a question of 1 to 8192 bytes with a context of at most 16 KiB,
-- drawing from the agent's 'help_requests' bucket (the LLM-backed answers are its quota); an
-- agent reads back only its own requests.
DROP FUNCTION IF EXISTS fleet.submit_help_request(text, text, text, jsonb);
DROP FUNCTION IF EXISTS fleet.submit_help_request(text, bytea, text, jsonb);
DROP FUNCTION IF EXISTS fleet.get_help_request(text, text, bigint);

CREATE FUNCTION fleet.submit_help_request(p_agent text, p_proof bytea, p_question text, p_context jsonb)
RETURNS TABLE (request_id bigint, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_agent bigint := fleet.authenticate(p_agent, p_proof);
    v_id bigint;
    v_retry double precision;
BEGIN
    IF length(btrim(coalesce(p_question, ''))) = 0 OR octet_length(p_question) > 8192 THEN
        RAISE EXCEPTION 'a question must have 1 to 8192 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(p_context::text) > 16384 THEN
        RAISE EXCEPTION 'help request context larger than 16 KiB' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    v_retry := fleet.take_rate(v_agent, 'help_requests');
    IF v_retry IS NOT NULL THEN
        RETURN QUERY SELECT NULL::bigint, v_retry;
        RETURN;
    END IF;
    INSERT INTO help_requests (agent_id, requested_by, question, context)
    VALUES (v_agent, p_agent, p_question, coalesce(p_context, '{}'::jsonb))
    RETURNING help_requests.request_id INTO v_id;
    RETURN QUERY SELECT v_id, NULL::double precision;
END;
$$;

CREATE OR REPLACE FUNCTION fleet.get_help_request(p_agent text, p_proof bytea, p_request_id bigint)
RETURNS TABLE (request_id bigint, status text, question text, answer text, sources jsonb, answered_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_agent bigint := fleet.authenticate(p_agent, p_proof);
BEGIN
    RETURN QUERY SELECT h.request_id, h.status, h.question, h.answer, h.sources, h.answered_at
    FROM help_requests h WHERE h.request_id = p_request_id AND h.agent_id = v_agent;
END;
$$;
