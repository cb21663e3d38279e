-- Returns the agent_id of p_agent when the caller may act for it; raises otherwise. A session
-- of an agent's own login acts for that agent only, whatever proof it holds. The proof
-- is p_proof, else the session's (fleet.session_proof). Takes no
-- lock: callers lock only what belongs to the agent it returned. An agent login gets the same
-- answer for an unknown name and a wrong token, so names cannot be probed; an operator (who can
-- read the registry anyway) is told which it was.
DROP FUNCTION IF EXISTS fleet.authenticate(text, text);

CREATE OR REPLACE FUNCTION fleet.authenticate(p_agent text, p_proof bytea) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_hash bytea;
    v_operator boolean := fleet.caller_is_operator();
    v_proof bytea := coalesce(p_proof, fleet.session_proof());
    v_login text;
BEGIN
    SELECT agent_id, token_hash, db_login INTO v_id, v_hash, v_login FROM agents WHERE name = p_agent;
    IF v_operator AND v_proof IS NULL THEN
        IF v_id IS NULL THEN
            RAISE EXCEPTION 'unknown agent %', quote_literal(coalesce(p_agent, '')) USING ERRCODE = 'no_data_found';
        END IF;
        RETURN v_id;
    END IF;
    IF v_id IS NULL OR v_proof IS NULL OR v_hash IS NULL OR v_hash <> fleet.token_hash(v_proof)
       OR (session_user ~ '_a[0-9]+_[0-9]+$' AND v_login IS DISTINCT FROM session_user) THEN
        IF v_operator AND v_id IS NULL THEN
            RAISE EXCEPTION 'unknown agent %', quote_literal(coalesce(p_agent, '')) USING ERRCODE = 'no_data_found';
        END IF;
        RAISE EXCEPTION 'token refused for agent %', quote_literal(coalesce(p_agent, '')) USING ERRCODE = 'invalid_password';
    END IF;
    RETURN v_id;
END;
$$;
