-- Reads one key. An agent must authenticate and may read only its own namespace and the
-- prefixes granted to it; an operator reads anything (p_agent NULL).
DROP FUNCTION IF EXISTS fleet.kv_get(text);

CREATE OR REPLACE FUNCTION fleet.kv_get(p_agent text, p_proof bytea, p_key text)
RETURNS TABLE (value jsonb, version bigint, updated_by text, updated_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_agent bigint;
BEGIN
    IF p_agent IS NULL THEN
        IF NOT fleet.caller_is_operator() THEN
            RAISE EXCEPTION 'an agent name and token are required' USING ERRCODE = 'invalid_authorization_specification';
        END IF;
    ELSE
        v_agent := fleet.authenticate(p_agent, p_proof);
        IF NOT fleet.caller_is_operator() AND NOT fleet.kv_allowed(v_agent, p_agent, p_key, false) THEN
            RAISE EXCEPTION 'agent % may not read key %: agents read under %/ and granted prefixes',
                quote_literal(p_agent), quote_literal(left(p_key, 200)), p_agent
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    RETURN QUERY SELECT k.value, k.version, k.updated_by, k.updated_at FROM kv_store k WHERE k.key = p_key;
END;
$$;
