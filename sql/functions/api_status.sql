-- What `agents-pipeline status --json` shows, for the HTTP API's GET /v1/status and GET /metrics,
-- to a caller presenting an operator API key's proof (sql/0018); anyone else gets
-- invalid_password, the same for a wrong, revoked or missing key. Read-only.
CREATE OR REPLACE FUNCTION fleet.api_status(p_proof bytea) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
BEGIN
    IF NOT fleet.operator_key_valid(p_proof) THEN
        RAISE EXCEPTION 'operator key refused' USING ERRCODE = 'invalid_password';
    END IF;
    RETURN jsonb_build_object(
        'generated_at', now(),
        'agents', coalesce((
            SELECT jsonb_agg(jsonb_build_object(
                'agent_id', a.agent_id, 'name', a.name, 'agent_type', a.agent_type, 'host', a.host,
                'period_s', extract(epoch FROM a.period)::float, 'grace_s', extract(epoch FROM a.grace)::float,
                'status', a.status, 'status_since', a.status_since, 'status_message', a.status_message,
                'paused', a.paused, 'silenced_until', a.silenced_until, 'last_seen', a.last_seen,
                'last_kind', a.last_kind, 'last_message', a.last_message, 'clock_skew_s', a.clock_skew_s,
                'heartbeat_count', a.heartbeat_count, 'process_pid', a.process_pid,
                'process_pidfile', a.process_pidfile, 'process_match', a.process_match,
                'has_token', a.token_hash IS NOT NULL, 'lifecycle', a.lifecycle, 'retired_at', a.retired_at,
                'seconds_since_heartbeat', extract(epoch FROM now() - a.last_seen)::float)
                ORDER BY a.name)
            FROM agents a), '[]'::jsonb));
END;
$$;
