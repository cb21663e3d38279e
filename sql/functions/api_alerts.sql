-- The alerts `agents-pipeline alerts [--open] --json` lists, for the HTTP API's GET /v1/alerts and
-- GET /metrics, to a caller presenting an operator API key's proof (sql/0018); anyone else gets
-- invalid_password. Open alerts first, newest first; at most p_limit (1 to 1000). Read-only.
CREATE OR REPLACE FUNCTION fleet.api_alerts(p_proof bytea, p_open_only boolean, p_limit integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
BEGIN
    IF NOT fleet.operator_key_valid(p_proof) THEN
        RAISE EXCEPTION 'operator key refused' USING ERRCODE = 'invalid_password';
    END IF;
    IF p_limit IS NULL OR p_limit NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'limit must be 1 to 1000, got %', p_limit USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN coalesce((
        SELECT jsonb_agg(x.doc ORDER BY x.open DESC, x.opened_at DESC)
        FROM (SELECT al.resolved_at IS NULL AS open, al.opened_at, jsonb_build_object(
                  'alert_id', al.alert_id, 'kind', al.kind, 'severity', al.severity, 'agent', a.name,
                  'subject', al.subject, 'message', al.message, 'opened_at', al.opened_at,
                  'resolved_at', al.resolved_at, 'last_notified_at', al.last_notified_at,
                  'duration_s', extract(epoch FROM coalesce(al.resolved_at, now()) - al.opened_at)::float,
                  'pending_notifications', (SELECT count(*) FROM notifications n
                                            WHERE n.alert_id = al.alert_id AND n.delivered_at IS NULL
                                              AND n.gave_up_at IS NULL)) AS doc
              FROM alerts al LEFT JOIN agents a ON a.agent_id = al.agent_id
              WHERE NOT p_open_only OR al.resolved_at IS NULL
              ORDER BY al.resolved_at IS NULL DESC, al.opened_at DESC
              LIMIT p_limit) x), '[]'::jsonb);
END;
$$;
