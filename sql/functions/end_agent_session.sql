-- Ends one session of an agent login and nothing else. Owned by @ROLE_PREFIX@_signaller, the
-- one role that is a member of pg_signal_backend (which could signal any non-superuser backend
-- on the server): this function narrows that to sessions whose login is the agent role or a
-- member of it. The pipeline may execute it; agents may not. fleet.apply_security() hands it
-- to the signaller role.
CREATE OR REPLACE FUNCTION fleet.end_agent_session(p_pid integer) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_login oid;
BEGIN
    -- (usesysid is one of the columns pg_stat_activity shows every role for every session)
    SELECT usesysid INTO v_login FROM pg_stat_activity WHERE pid = p_pid;
    IF v_login IS NULL OR to_regrole('@ROLE_PREFIX@_agent') IS NULL
       OR NOT pg_has_role(v_login, '@ROLE_PREFIX@_agent', 'MEMBER') THEN
        RAISE EXCEPTION 'process % is not a session of an agent login', p_pid USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN pg_terminate_backend(p_pid);
END;
$$;

