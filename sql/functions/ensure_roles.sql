-- Creates the roles that are missing and configures the agent login: owner, pipeline, agent
-- (see sql/0010_roles.sql for what each may do), signaller (ends agent sessions that hold an
-- agent row locked too long, through fleet.end_agent_session alone) and api (the HTTP API
-- server's login: the agent functions and fleet.record_pings, nothing else; every request it
-- serves carries a ping key or an agent token). A function so that apply_security() can run it
-- again after a restore onto another server.
--
-- History: sql/0010 (first version). This file is the one home from here on.
CREATE OR REPLACE FUNCTION fleet.ensure_roles() RETURNS void
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $roles$
DECLARE
    v_super boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '@ROLE_PREFIX@_owner') THEN
        CREATE ROLE @ROLE_PREFIX@_owner NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '@ROLE_PREFIX@_pipeline') THEN
        CREATE ROLE @ROLE_PREFIX@_pipeline NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '@ROLE_PREFIX@_agent') THEN
        -- No password yet: `agents-pipeline db grant-agent` sets one (as a SCRAM verifier).
        CREATE ROLE @ROLE_PREFIX@_agent LOGIN NOINHERIT;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '@ROLE_PREFIX@_api') THEN
        -- A member of no role: its grants are its own (apply_security). Never an operator.
        CREATE ROLE @ROLE_PREFIX@_api LOGIN NOINHERIT;
    END IF;
    -- The one role allowed to end backends, and only through fleet.end_agent_session, which
    -- it owns. Granting pg_signal_backend needs a superuser; without one, held agent rows are
    -- still reported, and readiness says that sessions cannot be ended.
    IF v_super AND NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '@ROLE_PREFIX@_signaller') THEN
        CREATE ROLE @ROLE_PREFIX@_signaller NOLOGIN;
    END IF;
    IF v_super THEN
        GRANT pg_signal_backend TO @ROLE_PREFIX@_signaller;
    END IF;
    -- A migrating login that is not a superuser (a managed database's admin) must be able
    -- to act as the owner: to hand objects over now and to alter them in later migrations.
    IF NOT v_super AND NOT pg_has_role(current_user, '@ROLE_PREFIX@_owner', 'MEMBER') THEN
        GRANT @ROLE_PREFIX@_owner TO CURRENT_USER;
    END IF;

    BEGIN
        -- A buggy agent must not hold locks or run away with the server.
        ALTER ROLE @ROLE_PREFIX@_agent SET statement_timeout = '60s';
        ALTER ROLE @ROLE_PREFIX@_agent SET idle_in_transaction_session_timeout = '60s';
        ALTER ROLE @ROLE_PREFIX@_agent SET lock_timeout = '10s';
        ALTER ROLE @ROLE_PREFIX@_api SET statement_timeout = '60s';
        ALTER ROLE @ROLE_PREFIX@_api SET idle_in_transaction_session_timeout = '60s';
        ALTER ROLE @ROLE_PREFIX@_api SET lock_timeout = '10s';
    EXCEPTION WHEN insufficient_privilege THEN
        RAISE WARNING 'no CREATEROLE: the agent login''s timeouts were not set; see docs/security.md';
    END;

    IF v_super THEN
        -- psycopg2 sends parameters inside the statement text, so an agent's token is part of
        -- the query text. Every agent shares one login, and pg_stat_activity shows a running
        -- statement to any session of the same role: without this, one agent could read the
        -- others' tokens there. The same goes for statements written to the server log.
        -- These settings are superuser-only, so an agent session cannot turn them back on.
        ALTER ROLE @ROLE_PREFIX@_agent NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
        ALTER ROLE @ROLE_PREFIX@_agent SET track_activities = off;
        ALTER ROLE @ROLE_PREFIX@_agent SET log_statement = 'none';
        ALTER ROLE @ROLE_PREFIX@_agent SET log_min_error_statement = 'panic';
        ALTER ROLE @ROLE_PREFIX@_agent SET log_min_duration_statement = -1;
        -- A query that sorts or hashes without end must not fill the server's disk.
        ALTER ROLE @ROLE_PREFIX@_agent SET temp_file_limit = '256MB';
        -- The API's statements carry token proofs (bearer batches) and ping-key hashes for many
        -- agents: the same settings keep them out of pg_stat_activity and the server log.
        ALTER ROLE @ROLE_PREFIX@_api NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;
        ALTER ROLE @ROLE_PREFIX@_api SET track_activities = off;
        ALTER ROLE @ROLE_PREFIX@_api SET log_statement = 'none';
        ALTER ROLE @ROLE_PREFIX@_api SET log_min_error_statement = 'panic';
        ALTER ROLE @ROLE_PREFIX@_api SET log_min_duration_statement = -1;
        ALTER ROLE @ROLE_PREFIX@_api SET temp_file_limit = '256MB';
    ELSIF NOT EXISTS (SELECT 1 FROM pg_db_role_setting
                      WHERE setrole = '@ROLE_PREFIX@_agent'::regrole AND setdatabase = 0
                        AND 'track_activities=off' = ANY (setconfig)) THEN
        RAISE WARNING 'not a superuser: ask one to run ALTER ROLE @ROLE_PREFIX@_agent SET track_activities = off '
                      '(and log_min_error_statement = panic), or agents can read each other''s tokens '
                      'in pg_stat_activity; see docs/security.md';
    END IF;
END;
$roles$;

