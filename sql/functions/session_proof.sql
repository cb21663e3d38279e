-- The token proof a connection presented in its startup packet (options '-c
-- agents_pipeline.proof=<hex>', as SharedState connects): an agent function falls back to it
-- when its proof argument is NULL. A setting sent at connection start appears in no statement
-- text, log line or pg_stat_activity row, unlike an argument. Anything but 64 hex digits is
-- no proof at all.
-- No SET clause (everything it calls is pg_catalog's), so callers inline it.
CREATE OR REPLACE FUNCTION fleet.session_proof() RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE WHEN pg_catalog.current_setting('agents_pipeline.proof', true) ~ '^[0-9a-f]{64}$'
                THEN pg_catalog.decode(pg_catalog.current_setting('agents_pipeline.proof', true), 'hex') END
$$;
