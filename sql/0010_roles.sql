-- 0010: database roles, so that each caller holds only the rights it needs.
--
--   @ROLE_PREFIX@_owner     NOLOGIN. Owns schema fleet and everything in it, so the SECURITY
--                           DEFINER agent functions of 0002 run as this role, not as the login
--                           that happened to apply the migrations (often a superuser).
--   @ROLE_PREFIX@_pipeline  NOLOGIN group role for the Dagster jobs: DML on every fleet table,
--                           the sequences, EXECUTE on every fleet function. No DDL: grant it to
--                           the Dagster login (GRANT ..._pipeline TO dagster_login).
--   @ROLE_PREFIX@_agent     the one LOGIN shared by every agent host: USAGE on schema fleet and
--                           EXECUTE on the agent functions SharedState calls. Nothing else: no
--                           table privilege at all, so no reading other agents' rows, no DDL,
--                           no DELETE/UPDATE/TRUNCATE, no registering agents. Which agent a call
--                           acts for is proven by its token inside each function (0002).
--
-- Roles are global to the server, hence the prefix (AGENTS_PIPELINE_ROLE_PREFIX) and the
-- "create if missing" below: a second database on the same server reuses them.
--
-- FOR AUTHORS OF LATER MIGRATIONS (0011 and up): end every migration that creates objects in
-- fleet with
--     SELECT fleet.apply_security();
-- It hands new objects to the owner role, revokes EXECUTE from PUBLIC on new functions
-- (PostgreSQL grants it by default) and grants the pipeline role its rights. The default
-- privileges apply_security sets already cover the pipeline's grants for objects created by the owner
-- role or by the login that applied this file, but not ownership, nor PUBLIC's EXECUTE on a
-- function created by another login. A function agents must call is granted explicitly
-- (GRANT EXECUTE ON FUNCTION fleet.f(...) TO @ROLE_PREFIX@_agent) and added to AGENT_FUNCTIONS
-- in agents_pipeline/defs/security/roles.py; the security tests fail until both agree.

-- Creates the roles that are missing and configures the agent login. A function rather than a
-- DO block so that apply_security() can run it again: after a restore onto another server
-- (pg_restore --no-owner --no-acl), `agents-pipeline db grant-agent` rebuilds everything.
CREATE FUNCTION fleet.ensure_roles() RETURNS void
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
    ELSIF NOT EXISTS (SELECT 1 FROM pg_db_role_setting
                      WHERE setrole = '@ROLE_PREFIX@_agent'::regrole AND setdatabase = 0
                        AND 'track_activities=off' = ANY (setconfig)) THEN
        RAISE WARNING 'not a superuser: ask one to run ALTER ROLE @ROLE_PREFIX@_agent SET track_activities = off '
                      '(and log_min_error_statement = panic), or agents can read each other''s tokens '
                      'in pg_stat_activity; see docs/security.md';
    END IF;
END;
$roles$;

SELECT fleet.ensure_roles();

-- Hands every object of schema fleet to the owner role and (re)applies every grant. Idempotent;
-- runs as the caller (the migrating login), never as a definer. Database-level privileges are
-- included because CREATE DATABASE ... TEMPLATE and pg_restore without --create do not copy
-- them: `agents-pipeline db grant-agent` runs this again for that reason.
CREATE FUNCTION fleet.apply_security() RETURNS void
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_owner constant text := '@ROLE_PREFIX@_owner';
    v_pipeline constant text := '@ROLE_PREFIX@_pipeline';
    v_agent constant text := '@ROLE_PREFIX@_agent';
    v_agent_functions constant text[] := ARRAY[
        'record_heartbeats', 'kv_get', 'kv_set', 'send_message', 'claim_messages', 'ack_message',
        'record_conversation', 'report_metrics', 'submit_help_request', 'get_help_request',
        'ensure_current_partitions'];
    o record;
BEGIN
    PERFORM fleet.ensure_roles();
    EXECUTE format('ALTER SCHEMA fleet OWNER TO %I', v_owner);

    -- Relations (partitions included: ALTER TABLE does not recurse to them). Sequences owned
    -- by a column (identity, serial) follow their table and cannot be altered alone; objects
    -- that belong to an extension keep the extension's owner.
    FOR o IN
        SELECT c.oid::regclass AS rel,
               CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                              WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind
        FROM pg_class c
        WHERE c.relnamespace = 'fleet'::regnamespace
          AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
          AND c.relowner <> v_owner::regrole
          AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d
                          WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                            AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')))
          AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_class'::regclass
                            AND e.objid = c.oid AND e.deptype = 'e')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I', o.kind, o.rel, v_owner);
    END LOOP;

    FOR o IN
        SELECT p.oid::regprocedure AS fn,
               CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END AS kind
        FROM pg_proc p
        WHERE p.pronamespace = 'fleet'::regnamespace AND p.proowner <> v_owner::regrole
          AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass
                            AND e.objid = p.oid AND e.deptype = 'e')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I', o.kind, o.fn, v_owner);
    END LOOP;

    -- Free-standing types (enums, domains, ranges, composite types made with CREATE TYPE).
    FOR o IN
        SELECT t.oid::regtype AS typ, CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END AS kind
        FROM pg_type t LEFT JOIN pg_class c ON c.oid = t.typrelid
        WHERE t.typnamespace = 'fleet'::regnamespace AND t.typowner <> v_owner::regrole
          AND t.typtype IN ('e', 'd', 'r', 'c') AND (t.typtype <> 'c' OR c.relkind = 'c')
          AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_type'::regclass
                            AND e.objid = t.oid AND e.deptype = 'e')
    LOOP
        EXECUTE format('ALTER %s %s OWNER TO %I', o.kind, o.typ, v_owner);
    END LOOP;

    -- Nobody but the named roles gets anything in fleet; the agent gets no table at all.
    EXECUTE 'REVOKE ALL ON SCHEMA fleet FROM PUBLIC';
    EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA fleet FROM PUBLIC';
    EXECUTE 'REVOKE ALL ON ALL SEQUENCES IN SCHEMA fleet FROM PUBLIC';
    EXECUTE 'REVOKE ALL ON ALL ROUTINES IN SCHEMA fleet FROM PUBLIC';
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA fleet FROM %I', v_agent);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA fleet FROM %I', v_agent);

    EXECUTE format('GRANT USAGE ON SCHEMA fleet TO %I, %I', v_pipeline, v_agent);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA fleet TO %I', v_pipeline);
    EXECUTE format('GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA fleet TO %I', v_pipeline);
    EXECUTE format('GRANT EXECUTE ON ALL ROUTINES IN SCHEMA fleet TO %I', v_pipeline);
    EXECUTE format('REVOKE EXECUTE ON FUNCTION fleet.apply_security(), fleet.ensure_roles() FROM %I', v_pipeline);
    FOR o IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p
        WHERE p.pronamespace = 'fleet'::regnamespace AND p.proname = ANY (v_agent_functions)
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', o.fn, v_agent);
    END LOOP;

    -- The schema-version check of the Dagster jobs reads the migration ledger.
    IF to_regclass('public.agents_pipeline_migrations') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON public.agents_pipeline_migrations TO %I', v_pipeline);
    END IF;

    -- Objects created later, by the owner role (a migration that SETs ROLE to it, or the
    -- definer functions creating partitions) or by the login running this: the pipeline
    -- role's grants follow automatically. Per-schema defaults can only add, so PUBLIC's EXECUTE
    -- on functions is revoked globally, for the owner role only (in this database only).
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I REVOKE EXECUTE ON ROUTINES FROM PUBLIC', v_owner);
    FOR o IN SELECT DISTINCT r AS creator FROM unnest(ARRAY[v_owner, current_user::text]) AS r LOOP
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA fleet '
                       'GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', o.creator, v_pipeline);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA fleet '
                       'GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %I', o.creator, v_pipeline);
        EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA fleet '
                       'GRANT EXECUTE ON ROUTINES TO %I', o.creator, v_pipeline);
    END LOOP;

    -- Database level: no temporary tables (DDL of a kind) and, on servers older than 15,
    -- no CREATE in schema public for whoever can connect. Without ownership of the database
    -- these only warn; docs/security.md has the statements for its owner.
    EXECUTE 'REVOKE CREATE ON SCHEMA public FROM PUBLIC';
    EXECUTE format('REVOKE TEMPORARY ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO %I, %I', current_database(), v_owner, v_pipeline);
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), v_agent);
END;
$$;

SELECT fleet.apply_security();

-- Partitions made later by ensure_partitions must be reachable by the pipeline role (the
-- janitor reads them directly), and calling it directly must work for the pipeline role too,
-- so it runs as the owner. It checks its table against an allow-list and bounds the range.
ALTER FUNCTION fleet.ensure_partitions(text, date, date) SECURITY DEFINER;
