-- Which keys an agent may read or write: those under '<its name>/', and those under a prefix an
-- operator granted it (fleet.kv_grants; can_write for writes). So no agent can take the row lock
-- of another agent's key and stall its compare-and-set.
CREATE OR REPLACE FUNCTION fleet.kv_allowed(p_agent_id bigint, p_agent text, p_key text, p_write boolean)
RETURNS boolean
LANGUAGE sql STABLE SET search_path = fleet, pg_temp
AS $$
    SELECT starts_with(p_key, p_agent || '/')
        OR EXISTS (SELECT 1 FROM kv_grants g
                   WHERE g.agent_id = p_agent_id AND starts_with(p_key, g.prefix)
                     AND (g.can_write OR NOT p_write))
$$;
