-- Whether the session's login may write the registry (an operator, the pipeline): such a
-- caller may act for any agent without a token, as it could with plain SQL. No SET clause, so
-- callers inline it; the table name is qualified.
--
-- History: sql/0002 (first version, with a search_path clause).
CREATE OR REPLACE FUNCTION fleet.caller_is_operator() RETURNS boolean
LANGUAGE sql STABLE
AS $$ SELECT pg_catalog.has_table_privilege(session_user, 'fleet.agents', 'UPDATE') $$;
