-- The token proof a connection presented in its startup packet (options '-c
-- agents_pipeline.proof=<hex>', as SharedState connects): an agent function falls back to it
-- when its proof argument is NULL. A setting sent at connection start appears in no statement
-- text, log line or pg_stat_activity row, unlike an argument. Anything but 64 hex digits is
-- no proof at all.
CREATE OR REPLACE FUNCTION fleet.session_proof() RETURNS bytea
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = fleet, pg_temp
AS $$
    SELECT CASE WHEN s ~ '^[0-9a-f]{64}$' THEN decode(s, 'hex') END
    FROM (SELECT current_setting('agents_pipeline.proof', true) AS s) x
$$;
