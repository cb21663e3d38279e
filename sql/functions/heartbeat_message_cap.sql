-- The one cap on a heartbeat's message, in bytes, for every path: fleet.store_heartbeats refuses
-- a longer message from the SQL path (SharedState, the CLI, the bearer-token HTTP batches), and
-- fleet.cut_message cuts a longer ping body to it (the HTTP ping path, as healthchecks does).
-- agents_pipeline.core.validation.MAX_MESSAGE is the client's copy (a test keeps them equal).
-- No SET clause and IMMUTABLE, so the planner folds it into a constant.
CREATE OR REPLACE FUNCTION fleet.heartbeat_message_cap() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 8192 $$;
