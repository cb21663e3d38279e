-- Opens an alert under p_key unless one is open, and queues its 'opened' notices at once (the
-- health evaluation's step 6 covers only agent_down and incident alerts). Returns the open
-- alert's id. Used by the checks that are not status transitions: held locks, throttling.
CREATE OR REPLACE FUNCTION fleet.raise_alert(
    p_key text, p_kind text, p_severity text, p_agent_id bigint, p_subject text, p_message text,
    p_details jsonb, p_now timestamptz, p_channels text[]
) RETURNS bigint
LANGUAGE plpgsql SET search_path = fleet, pg_temp SET TimeZone = 'UTC'
AS $$
DECLARE
    v_id bigint;
BEGIN
    SELECT alert_id INTO v_id FROM alerts WHERE alert_key = p_key AND resolved_at IS NULL;
    IF v_id IS NOT NULL THEN
        RETURN v_id;
    END IF;
    INSERT INTO alerts (alert_key, kind, severity, agent_id, subject, message, details, opened_at, last_notified_at)
    VALUES (p_key, p_kind, p_severity, p_agent_id, p_subject, p_message, coalesce(p_details, '{}'), p_now, p_now)
    ON CONFLICT (alert_key) WHERE resolved_at IS NULL DO NOTHING
    RETURNING alert_id INTO v_id;
    IF v_id IS NULL THEN
        SELECT alert_id INTO v_id FROM alerts WHERE alert_key = p_key AND resolved_at IS NULL;
        RETURN v_id;
    END IF;
    INSERT INTO notifications (alert_id, event, channel, idempotency_key, payload)
    SELECT v_id, 'opened', ch, format('alert:%s:opened:%s', v_id, ch),
           alert_payload(v_id, 'opened', format('alert:%s:opened', v_id), NULL)
    FROM unnest(p_channels) ch
    ON CONFLICT (idempotency_key) DO NOTHING;
    RETURN v_id;
END;
$$;

-- Resolves the open alert under p_key, if any, and queues its 'resolved' notices.
CREATE OR REPLACE FUNCTION fleet.clear_alert(p_key text, p_now timestamptz, p_channels text[])
RETURNS bigint
LANGUAGE plpgsql SET search_path = fleet, pg_temp SET TimeZone = 'UTC'
AS $$
DECLARE
    v_row alerts%ROWTYPE;
BEGIN
    UPDATE alerts SET resolved_at = greatest(p_now, opened_at)
    WHERE alert_key = p_key AND resolved_at IS NULL
    RETURNING * INTO v_row;
    IF v_row.alert_id IS NULL THEN
        RETURN NULL;
    END IF;
    INSERT INTO notifications (alert_id, event, channel, idempotency_key, payload)
    SELECT v_row.alert_id, 'resolved', ch, format('alert:%s:resolved:%s', v_row.alert_id, ch),
           alert_payload(v_row.alert_id, 'resolved', format('alert:%s:resolved', v_row.alert_id),
                         jsonb_build_object('resolved_at', v_row.resolved_at,
                                            'duration_s', extract(epoch FROM v_row.resolved_at - v_row.opened_at)))
    FROM unnest(p_channels) ch
    WHERE v_row.last_notified_at IS NOT NULL
    ON CONFLICT (idempotency_key) DO NOTHING;
    RETURN v_row.alert_id;
END;
$$;
