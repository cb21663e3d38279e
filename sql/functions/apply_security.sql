-- Hands every object of schema fleet to the owner role and (re)applies every grant. Idempotent;
-- runs as the caller (the migrating login), never as a definer. `db migrate` runs it after
-- every change to these files, and `agents-pipeline db grant-agent` after a restore.
--
-- History: sql/0010 (first version). This file is the one home from here on.
CREATE OR REPLACE FUNCTION fleet.apply_security() RETURNS void
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_owner constant text := '@ROLE_PREFIX@_owner';
    v_pipeline constant text := '@ROLE_PREFIX@_pipeline';
    v_agent constant text := '@ROLE_PREFIX@_agent';
    v_signaller constant text := '@ROLE_PREFIX@_signaller';
    v_api constant text := '@ROLE_PREFIX@_api';
    v_super boolean := (SELECT rolsuper FROM pg_roles WHERE rolname = current_user);
    v_agent_functions constant text[] := ARRAY[
        'record_heartbeats', 'kv_get', 'kv_set', 'send_message', 'claim_messages', 'ack_message',
        'record_conversation', 'report_metrics', 'submit_help_request', 'get_help_request',
        'ensure_current_partitions', 'submit_task', 'submit_tasks', 'claim_tasks', 'complete_task', 'complete_tasks', 'complete_and_claim',
        'fail_task',
        'extend_task', 'get_task', 'release_task', 'broadcast_message', 'list_peers'];
    -- The HTTP API's login: the agent functions, the pings it authenticates by key, and the
    -- operator reads that answer only to an operator API key (sql/0018).
    v_api_functions constant text[] := v_agent_functions || ARRAY['record_pings', 'api_status', 'api_alerts'];
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
          AND p.proowner IS DISTINCT FROM to_regrole(v_signaller)   -- end_agent_session stays its own
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
    EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA fleet FROM %I', v_api);
    EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA fleet FROM %I', v_api);

    EXECUTE format('GRANT USAGE ON SCHEMA fleet TO %I, %I, %I', v_pipeline, v_agent, v_api);
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
    FOR o IN
        SELECT p.oid::regprocedure AS fn FROM pg_proc p
        WHERE p.pronamespace = 'fleet'::regnamespace AND p.proname = ANY (v_api_functions)
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', o.fn, v_api);
    END LOOP;

    -- Agents may not end sessions, even their own kind's: only the pipeline runs the check.
    IF to_regprocedure('fleet.end_agent_session(integer)') IS NOT NULL THEN
        IF to_regrole(v_signaller) IS NOT NULL THEN
            EXECUTE format('ALTER FUNCTION fleet.end_agent_session(integer) OWNER TO %I', v_signaller);
        END IF;
        EXECUTE format('REVOKE ALL ON FUNCTION fleet.end_agent_session(integer) FROM PUBLIC, %I, %I', v_agent, v_api);
        EXECUTE format('GRANT EXECUTE ON FUNCTION fleet.end_agent_session(integer) TO %I', v_pipeline);
        IF to_regrole(v_signaller) IS NOT NULL THEN
            EXECUTE format('GRANT USAGE ON SCHEMA fleet TO %I', v_signaller);
        END IF;
    END IF;

    -- Advisory locks: PUBLIC may execute pg_advisory_lock and its kin, so an agent could take
    -- the keys of `db migrate` or the archiver and stall them. In this database only the owner
    -- and pipeline roles keep them. pg_catalog's functions belong to the bootstrap superuser,
    -- so this needs one; readiness reports it when it could not be done.
    IF v_super THEN
        FOR o IN
            SELECT p.oid::regprocedure AS fn FROM pg_proc p
            WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.proname LIKE 'pg\_%advisory%'
        LOOP
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', o.fn);
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I, %I', o.fn, v_owner, v_pipeline);
        END LOOP;
    ELSE
        RAISE WARNING 'not a superuser: PUBLIC can still take advisory locks in this database; '
                      'see docs/security.md';
    END IF;

    -- The schema-version check of the Dagster jobs reads the migration ledger.
    IF to_regclass('public.agents_pipeline_migrations') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON public.agents_pipeline_migrations TO %I', v_pipeline);
    END IF;
    IF to_regclass('public.agents_pipeline_functions') IS NOT NULL THEN
        EXECUTE format('GRANT SELECT ON public.agents_pipeline_functions TO %I', v_pipeline);
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
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO %I, %I', current_database(), v_agent, v_api);
END;
$$;

