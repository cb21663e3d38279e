-- LLM conversations, idempotent on the deterministic run id. Sizes are capped here in bytes
-- (prompt and response 1 MiB each, metadata 64 KiB); a rate refusal is retry_after_s.
DROP FUNCTION IF EXISTS fleet.record_conversation(text, text, uuid, text, text, text, text, integer, integer,
    numeric, double precision, text, jsonb, timestamptz);
DROP FUNCTION IF EXISTS fleet.record_conversation(text, bytea, uuid, text, text, text, text, integer, integer,
    numeric, double precision, text, jsonb, timestamptz);

CREATE FUNCTION fleet.record_conversation(
    p_agent text, p_proof bytea, p_run_id uuid, p_conversation_id text, p_model text,
    p_prompt text, p_response text, p_prompt_tokens integer, p_completion_tokens integer,
    p_cost numeric, p_latency_ms double precision, p_error text, p_metadata jsonb,
    p_created_at timestamptz
) RETURNS TABLE (conversation_pk bigint, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_agent bigint := fleet.authenticate(p_agent, p_proof);
    v_pk bigint;
    v_retry double precision;
    v_too_big text;
BEGIN
    v_too_big := CASE
        WHEN octet_length(p_prompt) > 1048576 THEN 'prompt larger than 1 MiB'
        WHEN octet_length(p_response) > 1048576 THEN 'response larger than 1 MiB'
        WHEN octet_length(p_metadata::text) > 65536 THEN 'metadata larger than 64 KiB'
        WHEN octet_length(p_model) > 200 THEN 'model longer than 200 bytes'
        WHEN octet_length(p_conversation_id) > 500 THEN 'conversation id longer than 500 bytes'
        WHEN octet_length(p_error) > 8192 THEN 'error larger than 8192 bytes'
        WHEN p_prompt_tokens < 0 OR p_completion_tokens < 0 THEN 'token counts must not be negative'
        WHEN p_cost < 0 OR p_latency_ms < 0 THEN 'cost and latency must not be negative'
        WHEN p_created_at > now() + interval '5 minutes' THEN 'created_at is in the future'
    END;
    IF v_too_big IS NOT NULL THEN
        RAISE EXCEPTION 'conversation refused: %', v_too_big USING ERRCODE = 'program_limit_exceeded';
    END IF;
    SELECT c.conversation_pk INTO v_pk FROM llm_conversations c WHERE c.run_id = p_run_id AND c.agent_id = v_agent;
    IF v_pk IS NOT NULL THEN
        RETURN QUERY SELECT v_pk, NULL::double precision;     -- recorded before
        RETURN;
    END IF;
    v_retry := fleet.take_rate(v_agent, 'conversations');
    IF v_retry IS NOT NULL THEN
        RETURN QUERY SELECT NULL::bigint, v_retry;
        RETURN;
    END IF;
    INSERT INTO llm_conversations (conversation_id, agent_id, run_id, model, prompt, response,
        prompt_tokens, completion_tokens, total_tokens, cost, latency_ms, error, metadata, created_at)
    VALUES (p_conversation_id, v_agent, p_run_id, p_model, p_prompt, p_response,
        p_prompt_tokens, p_completion_tokens,
        CASE WHEN p_prompt_tokens IS NULL AND p_completion_tokens IS NULL THEN NULL
             ELSE coalesce(p_prompt_tokens, 0) + coalesce(p_completion_tokens, 0) END,
        p_cost, p_latency_ms, p_error, coalesce(p_metadata, '{}'::jsonb), coalesce(p_created_at, now()))
    ON CONFLICT (run_id) DO NOTHING
    RETURNING llm_conversations.conversation_pk INTO v_pk;
    IF v_pk IS NULL THEN
        SELECT c.conversation_pk INTO v_pk FROM llm_conversations c WHERE c.run_id = p_run_id AND c.agent_id = v_agent;
        IF v_pk IS NULL THEN
            RAISE EXCEPTION 'run id % belongs to another agent', p_run_id USING ERRCODE = 'unique_violation';
        END IF;
    END IF;
    RETURN QUERY SELECT v_pk, NULL::double precision;
END;
$$;
