-- Gives an agent a database login of its own: a member of the agent role, with its own
-- CONNECTION LIMIT, so one agent (or a flood from its host) can use up its own connections and
-- no one else's; a session of that login may act for that agent only (fleet.login_agent). The
-- password arrives as a SCRAM verifier computed on the client from the agent's token, so no
-- secret is in the statement. The agent role's settings (timeouts, track_activities off,
-- temp_file_limit) are copied, because role settings are not inherited. Needs CREATEROLE; the
-- superuser-only settings need a superuser and are skipped (with a warning) without one.
-- The name carries the database's oid: roles are global to the server, agent ids are not.
CREATE OR REPLACE FUNCTION fleet.ensure_agent_login(p_agent_id bigint, p_verifier text, p_limit integer)
RETURNS text
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_login text := format('@ROLE_PREFIX@_a%s_%s',
                           (SELECT oid FROM pg_database WHERE datname = current_database()), p_agent_id);
    v_setting text;
BEGIN
    IF p_verifier IS NULL OR p_verifier !~ '^SCRAM-SHA-256\$' THEN
        RAISE EXCEPTION 'an agent login takes a SCRAM-SHA-256 verifier' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'an agent login''s connection limit must be 1 to 1000, got %', p_limit
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regrole(v_login) IS NULL THEN
        EXECUTE format('CREATE ROLE %I LOGIN INHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', v_login);
    END IF;
    EXECUTE format('ALTER ROLE %I LOGIN CONNECTION LIMIT %s PASSWORD %L', v_login, p_limit, p_verifier);
    EXECUTE format('GRANT @ROLE_PREFIX@_agent TO %I', v_login);
    FOR v_setting IN
        SELECT unnest(setconfig) FROM pg_db_role_setting
        WHERE setrole = '@ROLE_PREFIX@_agent'::regrole AND setdatabase = 0
    LOOP
        BEGIN
            EXECUTE format('ALTER ROLE %I SET %I = %L', v_login, split_part(v_setting, '=', 1),
                           substr(v_setting, length(split_part(v_setting, '=', 1)) + 2));
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE WARNING 'not a superuser: % was not set for login %', split_part(v_setting, '=', 1), v_login;
        END;
    END LOOP;
    UPDATE agents SET db_login = v_login WHERE agent_id = p_agent_id;
    RETURN v_login;
END;
$$;

-- A session acts for its own agent only when its login has an agent login's shape
-- (<prefix>_a<oid>_<id>): the agent functions compare agents.db_login with session_user then,
-- without a lookup of their own. Names of that shape are reserved for agent logins.
DROP FUNCTION IF EXISTS fleet.login_agent();
