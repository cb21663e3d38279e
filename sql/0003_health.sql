-- 0003: agent health evaluation and the alerts it raises, as set-based SQL.
--
-- fleet.evaluate_health(now, ...) is the whole health evaluator in one transaction: it judges
-- every agent from the columns the heartbeat path keeps (last_seen, last_kind, run_started_at;
-- never max() over fleet.heartbeats), records each transition at the deadline it passed, and
-- opens, resolves, reminds and queues notifications in fleet.notifications. `now` is a
-- parameter so that tests drive every transition with explicit times. Two evaluators running
-- at once never record a transition twice: candidate rows are locked with SKIP LOCKED, judged
-- again on their latest version, and written with UPDATE ... WHERE status = <old>.

-- One transition, as returned by the evaluator and carried between its steps.
CREATE TYPE fleet.health_transition AS (
    agent_id    bigint,
    name        text,
    from_status text,
    to_status   text,
    changed_at  timestamptz,
    reason      text,
    message     text
);

-- The status an agent should have at p_now, from its row alone (no table access: a single
-- SELECT the planner inlines into the scan). reason names the rule that decided it. STABLE,
-- not IMMUTABLE: the messages format intervals, which depends on IntervalStyle.
CREATE FUNCTION fleet.health_state(
    p_status text, p_paused boolean, p_status_since timestamptz, p_created_at timestamptz,
    p_last_seen timestamptz, p_last_kind text, p_last_message text, p_run_started_at timestamptz,
    p_last_fail_at timestamptz, p_period interval, p_grace interval, p_now timestamptz
) RETURNS TABLE (status text, changed_at timestamptz, reason text, message text)
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT CASE r.reason
               WHEN 'paused' THEN 'paused'
               WHEN 'resumed_up' THEN 'up'
               WHEN 'resumed_new' THEN 'new'
               WHEN 'waiting' THEN 'new'
               WHEN 'never_heard' THEN 'down'
               WHEN 'fail' THEN 'down'
               WHEN 'failed_between' THEN 'down'
               WHEN 'overrun' THEN 'down'
               WHEN 'missed' THEN 'down'
               WHEN 'late' THEN 'late'
               ELSE 'up'
           END,
           -- never before the current status began: the timeline stays ordered
           greatest(p_status_since, CASE r.reason
               WHEN 'never_heard' THEN r.base + p_period + p_grace
               WHEN 'overrun' THEN p_run_started_at + p_grace
               WHEN 'missed' THEN p_last_seen + p_period + p_grace
               WHEN 'late' THEN p_last_seen + p_period
               WHEN 'fail' THEN coalesce(p_last_fail_at, p_last_seen)
               WHEN 'failed_between' THEN p_last_fail_at
               WHEN 'heartbeat' THEN p_last_seen
               WHEN 'running' THEN p_last_seen
               ELSE p_now
           END),
           r.reason,
           CASE r.reason
               WHEN 'fail' THEN coalesce(p_last_message, 'the agent reported a failure')
               WHEN 'failed_between' THEN format('reported a failure at %s and heartbeats again since %s',
                                                 p_last_fail_at AT TIME ZONE 'UTC', p_last_seen AT TIME ZONE 'UTC')
               WHEN 'overrun' THEN format('started at %s and reported no success within the grace of %s',
                                          p_run_started_at AT TIME ZONE 'UTC', p_grace)
               WHEN 'missed' THEN format('no heartbeat since %s (period %s, grace %s)',
                                         p_last_seen AT TIME ZONE 'UTC', p_period, p_grace)
               WHEN 'late' THEN format('no heartbeat since %s (period %s)', p_last_seen AT TIME ZONE 'UTC', p_period)
               WHEN 'never_heard' THEN format('registered at %s and never sent a heartbeat',
                                              r.base AT TIME ZONE 'UTC')
               WHEN 'paused' THEN 'paused by an operator'
           END
    FROM (
        SELECT h.base, CASE
            WHEN p_paused THEN 'paused'
            WHEN p_status = 'paused' THEN
                CASE WHEN h.heard AND p_last_kind IS DISTINCT FROM 'fail'
                          AND p_now < p_last_seen + p_period THEN 'resumed_up'
                     ELSE 'resumed_new' END
            WHEN NOT h.heard THEN
                CASE WHEN p_now >= h.base + p_period + p_grace THEN 'never_heard' ELSE 'waiting' END
            WHEN p_last_kind = 'fail' THEN 'fail'
            -- a failure followed by a success between two evaluations still counts: down at the
            -- failure now, up again at the next evaluation (with its downtime)
            WHEN p_last_fail_at > p_status_since AND p_status <> 'down' THEN 'failed_between'
            WHEN p_last_kind = 'start' AND p_run_started_at IS NOT NULL
                 AND p_now >= p_run_started_at + p_grace THEN 'overrun'
            WHEN p_now >= p_last_seen + p_period + p_grace THEN 'missed'
            WHEN p_now >= p_last_seen + p_period THEN 'late'
            WHEN p_last_kind = 'start' THEN 'running'
            ELSE 'heartbeat'
        END AS reason
        FROM (SELECT
                  -- a 'new' agent (registered or resumed) counts only signals received since
                  p_last_seen IS NOT NULL
                      AND NOT (p_status = 'new' AND p_last_seen < p_status_since) AS heard,
                  CASE WHEN p_status = 'new' THEN p_status_since ELSE p_created_at END AS base
             ) h
    ) r
$$;

-- The notification payload for an alert event; the sender renders it and receivers dedupe on
-- idempotency_key. Matches agents_pipeline.defs.alerts.store. It takes the alert's id and reads the
-- row itself, rather than taking a fleet.alerts row value: a row built with ROW(...)::alerts
-- breaks as soon as a later migration adds a column to fleet.alerts.
CREATE FUNCTION fleet.alert_payload(p_alert_id bigint, p_event text, p_key text, p_extra jsonb)
RETURNS jsonb
LANGUAGE sql STABLE
AS $$
    SELECT jsonb_build_object(
        'event', p_event, 'alert_id', a.alert_id, 'kind', a.kind, 'severity', a.severity,
        'agent_id', a.agent_id, 'agent', (SELECT g.name FROM fleet.agents g WHERE g.agent_id = a.agent_id),
        'subject', a.subject, 'message', a.message, 'details', a.details,
        'opened_at', a.opened_at, 'idempotency_key', p_key) || coalesce(p_extra, '{}'::jsonb)
    FROM fleet.alerts a WHERE a.alert_id = p_alert_id
$$;

CREATE FUNCTION fleet.evaluate_health(
    p_now        timestamptz,
    p_channels   text[],
    p_reminder   interval DEFAULT interval '1 hour',   -- NULL or 0: no reminders
    p_min_fleet  integer DEFAULT 5                     -- smallest fleet the collapse guard applies to
) RETURNS SETOF fleet.health_transition
LANGUAGE plpgsql
SET search_path = fleet, pg_temp
SET TimeZone = 'UTC'      -- times in notification payloads are rendered in UTC
AS $$
DECLARE
    v_changes  fleet.health_transition[];
    v_fleet    integer;
    v_down     integer;
    v_new_down integer;
    v_incident bigint;
    v_remind   boolean := p_reminder IS NOT NULL AND p_reminder > interval '0';
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'evaluate_health: now must be given' USING ERRCODE = 'null_value_not_allowed';
    END IF;

    -- 1. Transitions. Judge every agent on the statement snapshot; lock only the ones whose
    -- status changes, in id order with SKIP LOCKED (so the evaluator never waits on a heartbeat
    -- batch nor deadlocks with one); judge the locked, latest row versions again; write.
    WITH candidates AS (
        SELECT a.agent_id
        FROM agents a
        CROSS JOIN LATERAL health_state(a.status, a.paused, a.status_since, a.created_at, a.last_seen,
                                        a.last_kind, a.last_message, a.run_started_at, a.last_fail_at, a.period, a.grace,
                                        p_now) s
        WHERE NOT a.placeholder AND s.status <> a.status
    ), locked AS (
        SELECT a.* FROM agents a
        WHERE a.agent_id IN (SELECT agent_id FROM candidates)
        ORDER BY a.agent_id
        FOR NO KEY UPDATE SKIP LOCKED
    ), judged AS (
        SELECT l.agent_id, l.name, l.status AS from_status, s.status AS to_status, s.changed_at, s.reason, s.message
        FROM locked l
        CROSS JOIN LATERAL health_state(l.status, l.paused, l.status_since, l.created_at, l.last_seen,
                                        l.last_kind, l.last_message, l.run_started_at, l.last_fail_at, l.period, l.grace,
                                        p_now) s
        WHERE s.status <> l.status
    ), written AS (
        UPDATE agents a
        SET status = j.to_status, status_since = j.changed_at, status_message = j.message
        FROM judged j
        WHERE a.agent_id = j.agent_id AND a.status = j.from_status
        RETURNING j.*
    ), recorded AS (
        INSERT INTO status_changes (agent_id, from_status, to_status, changed_at, noticed_at, reason, message)
        SELECT w.agent_id, w.from_status, w.to_status, w.changed_at, p_now, w.reason, w.message FROM written w
    )
    SELECT coalesce(array_agg(ROW(w.agent_id, w.name, w.from_status, w.to_status, w.changed_at,
                                  w.reason, w.message)::health_transition ORDER BY w.agent_id), '{}')
    INTO v_changes FROM written w;

    -- 2. Fleet-collapse guard: more than half of a fleet of at least p_min_fleet going down in
    -- one evaluation points at the database, the network or the monitor: one incident alert.
    SELECT count(*) FILTER (WHERE NOT paused), count(*) FILTER (WHERE status = 'down' AND NOT paused)
    INTO v_fleet, v_down FROM agents WHERE NOT placeholder;
    SELECT count(*) INTO v_new_down FROM unnest(v_changes) c WHERE c.to_status = 'down';

    SELECT alert_id INTO v_incident FROM alerts WHERE alert_key = 'fleet_collapse' AND resolved_at IS NULL;
    IF v_incident IS NULL AND v_fleet >= p_min_fleet AND v_new_down * 2 > v_fleet THEN
        INSERT INTO alerts (alert_key, kind, severity, subject, message, details, opened_at)
        VALUES ('fleet_collapse', 'incident', 'critical',
                format('%s of %s agents went down at once', v_new_down, v_fleet),
                'More than half of the fleet went down in one evaluation: the database, the network '
                || 'or the monitor itself is the likelier cause. Per-agent alerts are held back.',
                jsonb_build_object('agents_down', v_new_down, 'fleet_size', v_fleet,
                                   'agents', (SELECT jsonb_agg(c.name ORDER BY c.name)
                                              FROM unnest(v_changes) c WHERE c.to_status = 'down')),
                p_now)
        ON CONFLICT (alert_key) WHERE resolved_at IS NULL DO NOTHING
        RETURNING alert_id INTO v_incident;
        IF v_incident IS NULL THEN   -- a concurrent evaluator opened it
            SELECT alert_id INTO v_incident FROM alerts WHERE alert_key = 'fleet_collapse' AND resolved_at IS NULL;
        END IF;
    END IF;

    -- 3. Alerts for agents that went down (held back while an incident covers them).
    INSERT INTO alerts (alert_key, kind, severity, agent_id, subject, message, details, opened_at)
    SELECT 'agent_down:' || c.agent_id, 'agent_down', 'critical', c.agent_id,
           format('agent %s is down', c.name), c.message,
           jsonb_strip_nulls(jsonb_build_object('reason', c.reason, 'from_status', c.from_status,
                                                'incident_alert_id', v_incident)),
           c.changed_at
    FROM unnest(v_changes) c
    WHERE c.to_status = 'down'
    ON CONFLICT (alert_key) WHERE resolved_at IS NULL DO NOTHING;

    -- 4. Resolve the alerts of agents that left 'down' in this evaluation (by the unique key
    -- index: the cost follows the transitions, not the number of open alerts); a resolved
    -- notice (with the downtime) goes only where an opened notice went.
    WITH resolved AS (
        UPDATE alerts al
        SET resolved_at = greatest(c.changed_at, al.opened_at)
        FROM unnest(v_changes) c
        WHERE c.from_status = 'down' AND c.to_status <> 'down'
          AND al.alert_key = 'agent_down:' || c.agent_id AND al.resolved_at IS NULL
        RETURNING al.*, c.to_status AS agent_status
    )
    INSERT INTO notifications (alert_id, event, channel, idempotency_key, payload)
    SELECT r.alert_id, 'resolved', ch, format('alert:%s:resolved:%s', r.alert_id, ch),
           alert_payload(r.alert_id,
                         'resolved', format('alert:%s:resolved', r.alert_id),
                         jsonb_build_object('resolved_at', r.resolved_at, 'agent_status', r.agent_status,
                                            'duration_s', extract(epoch FROM r.resolved_at - r.opened_at)))
    FROM resolved r CROSS JOIN unnest(p_channels) ch
    WHERE r.last_notified_at IS NOT NULL AND NOT r.imported
    ON CONFLICT (idempotency_key) DO NOTHING;

    -- 5. The incident ends when no more than half of the fleet is down; agents still down then
    -- get their own alerts through step 6.
    SELECT count(*) FILTER (WHERE status = 'down' AND NOT paused) INTO v_down FROM agents WHERE NOT placeholder;
    WITH ended AS (
        UPDATE alerts SET resolved_at = p_now
        WHERE alert_key = 'fleet_collapse' AND resolved_at IS NULL AND v_down * 2 <= v_fleet
          AND opened_at <= p_now
        RETURNING *
    )
    INSERT INTO notifications (alert_id, event, channel, idempotency_key, payload)
    SELECT e.alert_id, 'resolved', ch, format('alert:%s:resolved:%s', e.alert_id, ch),
           alert_payload(e.alert_id, 'resolved', format('alert:%s:resolved', e.alert_id),
                         jsonb_build_object('resolved_at', e.resolved_at,
                                            'duration_s', extract(epoch FROM e.resolved_at - e.opened_at)))
    FROM ended e CROSS JOIN unnest(p_channels) ch
    WHERE e.last_notified_at IS NOT NULL
    ON CONFLICT (idempotency_key) DO NOTHING;
    SELECT alert_id INTO v_incident FROM alerts WHERE alert_key = 'fleet_collapse' AND resolved_at IS NULL;

    -- 6. Opened notices not sent yet (new alerts, a silence that expired, an incident that
    -- ended) and reminders while an alert stays open. Claiming by UPDATE ... RETURNING makes a
    -- concurrent evaluator skip what this one sends; idempotency keys make it exact.
    WITH due AS (
        SELECT al.alert_id,
               CASE WHEN al.last_notified_at IS NULL THEN
                        CASE al.kind WHEN 'incident' THEN 'incident' ELSE 'opened' END
                    ELSE 'reminder' END AS event,
               CASE WHEN al.last_notified_at IS NULL THEN format('alert:%s:opened', al.alert_id)
                    ELSE format('alert:%s:reminder:%s', al.alert_id,
                                floor(extract(epoch FROM p_now - al.opened_at) / extract(epoch FROM p_reminder)))
               END AS key
        FROM alerts al
        LEFT JOIN agents g ON g.agent_id = al.agent_id
        WHERE al.resolved_at IS NULL AND NOT al.imported
          AND al.kind IN ('agent_down', 'incident')
          AND (g.silenced_until IS NULL OR g.silenced_until <= p_now)
          -- held back while the incident that covers it is open
          AND (v_incident IS NULL OR (al.details ->> 'incident_alert_id') IS DISTINCT FROM v_incident::text)
          AND (al.last_notified_at IS NULL
               OR (v_remind AND al.last_notified_at + p_reminder <= p_now))
        ORDER BY al.alert_id
        FOR NO KEY UPDATE OF al SKIP LOCKED
    ), claimed AS (
        UPDATE alerts al SET last_notified_at = p_now
        FROM due d
        WHERE al.alert_id = d.alert_id
        RETURNING al.*, d.event, d.key
    )
    INSERT INTO notifications (alert_id, event, channel, idempotency_key, payload)
    SELECT c.alert_id, c.event, ch, c.key || ':' || ch,
           alert_payload(c.alert_id,
                         c.event, c.key,
                         CASE WHEN c.event = 'reminder' THEN jsonb_build_object(
                             'down_for_s', extract(epoch FROM p_now - c.opened_at)) END)
    FROM claimed c CROSS JOIN unnest(p_channels) ch
    ON CONFLICT (idempotency_key) DO NOTHING;

    RETURN QUERY SELECT * FROM unnest(v_changes);
END;
$$;

-- Heartbeat-stream counter between evaluations, for heartbeats per minute without counting
-- rows of fleet.heartbeats.
INSERT INTO fleet.system_config (key, value, description)
VALUES ('health.heartbeat_counter', NULL, 'total heartbeats and time at the last health evaluation')
ON CONFLICT (key) DO NOTHING;

-- The outbox sender claims due rows by this index.
CREATE INDEX notifications_pending_idx ON fleet.notifications (next_attempt_at, notification_id)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;
