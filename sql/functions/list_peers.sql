-- The agent's peers as an agent may see them: name, type, capabilities and status, and nothing
-- more (docs/security.md, "What an agent may see of its peers"). The caller and placeholder rows
-- (imported history) are left out. Draws one token from the agent's 'peers' bucket; a refusal is
-- one row with only retry_after_s set.
CREATE OR REPLACE FUNCTION fleet.list_peers(p_agent text, p_proof bytea)
RETURNS TABLE (name text, agent_type text, capabilities text[], status text, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
    v_retry double precision := fleet.take_rate(v_me, 'peers');
BEGIN
    IF v_retry IS NOT NULL THEN
        RETURN QUERY SELECT NULL::text, NULL::text, NULL::text[], NULL::text, v_retry;
        RETURN;
    END IF;
    RETURN QUERY
    SELECT a.name, a.agent_type, a.capabilities, a.status, NULL::double precision
    FROM agents a
    WHERE NOT a.placeholder AND a.agent_id <> v_me
    ORDER BY a.name;
END;
$$;
