-- fleet.evaluate_health(now, ...): the whole health evaluator in one transaction. It judges every
-- agent from the columns the heartbeat path keeps (last_seen, last_kind, run_started_at; never
-- max() over fleet.heartbeats), records each transition at the deadline it passed, and opens,
-- resolves, reminds and queues notifications in fleet.notifications. `now` is a parameter so
-- that tests drive every transition with explicit times. Two evaluators running at once never
-- record a transition twice: candidate rows are locked with SKIP LOCKED, judged again on their
-- latest version, and written with UPDATE ... WHERE status = <old>. A row skipped because some
-- session holds it is judged at a later evaluation; fleet.check_agent_row_locks reports and ends
-- a session that holds one too long.
--
-- History: sql/0003 (first version), sql/0011 (step 4: downtime ends at the heartbeat). This
-- file is the one home from here on; `db migrate` re-applies it when it changes. Issue #18 added
-- step 1c (a down agent's tasks released) and task_dead alerts to step 6's notices. Issue #19's
-- soak added step 0 (a silence is evidence only if the fleet was heard after it); step 6
-- honours a fleet file's silence windows (sql/functions/alert_routing.sql).

-- p_stall_max was added: the old signature goes in the same transaction (no stale overload).
DROP FUNCTION IF EXISTS fleet.evaluate_health(timestamptz, text[], interval, integer);

CREATE OR REPLACE FUNCTION fleet.evaluate_health(
    p_now        timestamptz,
    p_channels   text[],
    p_reminder   interval DEFAULT interval '1 hour',   -- NULL or 0: no reminders
    p_min_fleet  integer DEFAULT 5,                    -- smallest fleet the collapse guard applies to
    p_stall_max  interval DEFAULT interval '2 minutes' -- longest ingest stall judgments wait out; NULL or 0: none
) RETURNS SETOF fleet.health_transition
LANGUAGE plpgsql
SET search_path = fleet, pg_temp
SET TimeZone = 'UTC'      -- times in notification payloads are rendered in UTC
AS $$
DECLARE
    v_changes  fleet.health_transition[];
    v_bounces  fleet.health_transition[];
    v_skipped  bigint[];
    v_fleet    integer;
    v_down     integer;
    v_new_down integer;
    v_incident bigint;
    v_remind   boolean := p_reminder IS NOT NULL AND p_reminder > interval '0';
    v_heard    timestamptz;   -- the newest heartbeat stored from any agent (the pipeline's own excepted)
    v_live     integer;
    v_rate     double precision;
    v_hold     timestamptz;   -- set while ingest is stalled: silences past it are not judged
    v_back     text[];        -- alert keys of agents that left 'down' in this evaluation
BEGIN
    IF p_now IS NULL THEN
        RAISE EXCEPTION 'evaluate_health: now must be given' USING ERRCODE = 'null_value_not_allowed';
    END IF;

    -- 0. Ingest stall guard. When no agent at all has been heard for longer than a busy fleet
    -- can stay silent by chance (ten expected heartbeats, at least 2 s), the database, the API,
    -- the network or the host was stalled, not every agent at once (the soak saw 28 s of it: a
    -- paused virtual machine). A silence is evidence only if the fleet was heard after it, so
    -- deadlines later than the last heartbeat heard wait, for up to p_stall_max; after that the
    -- fleet is judged as usual and the collapse guard (step 2) opens one incident. The pipeline's
    -- own agents (the evaluator heartbeats in this very transaction) are not evidence.
    IF p_stall_max IS NOT NULL AND p_stall_max > interval '0' THEN
        SELECT max(a.last_seen),
               count(*) FILTER (WHERE a.status IN ('up', 'late') AND NOT a.paused),
               sum(1.0 / greatest(date_part('epoch', a.period), 0.001))   -- float8: extract() is numeric, slow
                   FILTER (WHERE a.status IN ('up', 'late') AND NOT a.paused)
        INTO v_heard, v_live, v_rate
        FROM agents a
        WHERE NOT a.placeholder AND a.agent_type IS DISTINCT FROM 'pipeline';
        IF v_live >= p_min_fleet AND (v_heard < p_now - p_stall_max) IS NOT TRUE
           AND v_heard < p_now - make_interval(secs => greatest(2.0, 10.0 / v_rate)) THEN
            v_hold := v_heard;
        END IF;
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
          AND (s.reason IN ('late', 'missed', 'overrun', 'never_heard') AND s.changed_at > v_hold) IS NOT TRUE
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
          AND (s.reason IN ('late', 'missed', 'overrun', 'never_heard') AND s.changed_at > v_hold) IS NOT TRUE
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
    -- The skipped rows by EXCEPT (a hashed set operation) rather than NOT EXISTS: the planner
    -- estimates a CTE's rows badly, and could run that anti join as a nested loop over two CTE
    -- scans, quadratic in the number of transitions (issue #19).
    SELECT coalesce(array_agg(ROW(w.agent_id, w.name, w.from_status, w.to_status, w.changed_at,
                                  w.reason, w.message)::health_transition ORDER BY w.agent_id), '{}'),
           ARRAY(SELECT c.agent_id FROM candidates c EXCEPT SELECT l.agent_id FROM locked l)
    INTO v_changes, v_skipped FROM written w;

    -- 1b. Bounces: an agent that was down, sent a heartbeat and went quiet again before this
    -- evaluation still looks 'down', but it recovered and failed again in between. Record both:
    -- up at the heartbeat (late at its period, when there is a grace), down at the new deadline;
    -- its old alert is resolved at the heartbeat here, and step 3 opens a new one.
    WITH bounce_candidates AS (
        SELECT a.agent_id FROM agents a
        WHERE NOT a.placeholder AND NOT a.paused AND a.status = 'down'
          AND a.last_seen > a.status_since AND a.last_kind IS DISTINCT FROM 'fail'
          AND NOT (a.agent_id = ANY (SELECT c.agent_id FROM unnest(v_changes) c))
    ), bounced AS (
        SELECT a.* FROM agents a
        WHERE a.agent_id IN (SELECT agent_id FROM bounce_candidates)
          AND a.status = 'down' AND a.last_seen > a.status_since
        ORDER BY a.agent_id
        FOR NO KEY UPDATE SKIP LOCKED
    ), judged AS (
        SELECT b.agent_id, b.name, b.last_seen, b.period, b.grace, b.status_since, s.changed_at AS down_at,
               s.reason, s.message
        FROM bounced b
        CROSS JOIN LATERAL health_state(b.status, b.paused, b.status_since, b.created_at, b.last_seen,
                                        b.last_kind, b.last_message, b.run_started_at, b.last_fail_at, b.period, b.grace,
                                        p_now) s
        WHERE s.status = 'down' AND s.reason IN ('missed', 'overrun') AND s.changed_at > b.last_seen
          AND (s.changed_at > v_hold) IS NOT TRUE
    ), written AS (
        UPDATE agents a SET status_since = j.down_at, status_message = j.message
        FROM judged j WHERE a.agent_id = j.agent_id AND a.status = 'down' AND a.status_since = j.status_since
        RETURNING j.*
    ), steps AS (
        SELECT w.agent_id, w.name, 'down'::text AS from_status, 'up'::text AS to_status, w.last_seen AS changed_at,
               'heartbeat'::text AS reason, NULL::text AS message
        FROM written w
        UNION ALL
        SELECT w.agent_id, w.name, 'up', 'late', w.last_seen + w.period, 'late',
               format('no heartbeat since %s (period %s)', w.last_seen AT TIME ZONE 'UTC', w.period)
        FROM written w WHERE w.reason = 'missed' AND w.grace > interval '0'
        UNION ALL
        SELECT w.agent_id, w.name, CASE WHEN w.reason = 'missed' AND w.grace > interval '0' THEN 'late' ELSE 'up' END,
               'down', w.down_at, w.reason, w.message
        FROM written w
    ), recorded AS (
        INSERT INTO status_changes (agent_id, from_status, to_status, changed_at, noticed_at, reason, message)
        SELECT s.agent_id, s.from_status, s.to_status, s.changed_at, p_now, s.reason, s.message FROM steps s
    ), resolved AS (
        UPDATE alerts al SET resolved_at = greatest(w.last_seen, al.opened_at)
        FROM written w
        WHERE al.alert_key = 'agent_down:' || w.agent_id AND al.resolved_at IS NULL
        RETURNING al.alert_id, al.opened_at, al.resolved_at, al.last_notified_at, al.imported
    ), resolved_notices AS (
        INSERT INTO notifications (alert_id, event, channel, idempotency_key, payload)
        SELECT r.alert_id, 'resolved', ch, format('alert:%s:resolved:%s', r.alert_id, ch),
               alert_payload(r.alert_id, 'resolved', format('alert:%s:resolved', r.alert_id),
                             jsonb_build_object('resolved_at', r.resolved_at, 'agent_status', 'up',
                                                'duration_s', extract(epoch FROM r.resolved_at - r.opened_at)))
        FROM resolved r CROSS JOIN unnest(p_channels) ch
        WHERE r.last_notified_at IS NOT NULL AND NOT r.imported
        ON CONFLICT (idempotency_key) DO NOTHING
    )
    SELECT coalesce(array_agg(ROW(s.agent_id, s.name, s.from_status, s.to_status, s.changed_at, s.reason,
                                  s.message)::health_transition ORDER BY s.agent_id, s.changed_at), '{}'),
           v_skipped || ARRAY(SELECT c.agent_id FROM bounce_candidates c EXCEPT SELECT b.agent_id FROM bounced b)
    INTO v_bounces, v_skipped FROM steps s;
    -- Rows some other session held: remembered with their holders (fleet.note_held_rows), so
    -- that fleet.check_agent_row_locks can report and end a hold that lasts.
    PERFORM fleet.note_held_rows(v_skipped, p_now);
    -- Only the new 'down' joins the transitions the later steps act on (alerts, collapse guard).
    v_changes := v_changes || ARRAY(SELECT b FROM unnest(v_bounces) b WHERE b.to_status = 'down');

    -- 1c. Tasks held by agents that are down (now, or before, when a held task row was skipped)
    -- are released at once, the attempt counted, rather than at lease expiry; rows an agent
    -- session holds are skipped (fleet.release_tasks). One index probe while no task is claimed;
    -- otherwise the down agents (a scan of fleet.agents: sql/0015 dropped the status index so
    -- that status changes are HOT updates), then each one's tasks by the holder index (OFFSET 0
    -- keeps that a lookup per down agent, never a scan of every claimed task).
    IF EXISTS (SELECT 1 FROM tasks t WHERE t.state = 'claimed') THEN
        PERFORM fleet.release_tasks(array_agg(h.task_id), array_agg(h.attempt_id), 'released: its agent was marked down')
        FROM agents a
        CROSS JOIN LATERAL (SELECT t.task_id, t.attempt_id FROM tasks t
                            WHERE t.claimed_by = a.agent_id AND t.state = 'claimed' OFFSET 0) h
        WHERE a.status = 'down'
        HAVING count(*) > 0;
    END IF;

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
    -- The downtime ends when the agent came back: for 'up' that is the transition's time (its
    -- heartbeat); for 'late' (it heartbeated and went quiet again before this evaluation saw it
    -- up) it is that heartbeat, not the start of 'late' one period later.
    -- Issue #19's soak: when the evaluator itself was held up (its daemon or code server
    -- restarting), last_seen is the latest of several heartbeats since the agent came back, and
    -- the downtime grew by the evaluator's delay. The first 'ok' or 'start' heartbeat after the
    -- alert opened ends it (one probe of heartbeats_agent_time_idx per resolved alert).
    -- Issue #19 at 100,000 agents: joined with unnest(v_changes), this statement was planned
    -- with the open alerts outside (estimated at one row, from statistics of before the alerts
    -- this very evaluation opened) and the 100,000 transitions rescanned inside, once per alert:
    -- minutes. So the keys go in as an array (probes of the unique key index, whatever the
    -- estimates), and what the transition said is read back from the agent's row, which step 1
    -- wrote and this transaction still holds locked (status = to_status, status_since = changed_at).
    v_back := ARRAY(SELECT 'agent_down:' || c.agent_id FROM unnest(v_changes) c
                    WHERE c.from_status = 'down' AND c.to_status <> 'down');
    IF cardinality(v_back) > 0 THEN
        WITH resolved AS (
            UPDATE alerts al
            SET resolved_at = greatest(coalesce(
                    (SELECT min(h.received_at) FROM heartbeats h
                     WHERE h.agent_id = al.agent_id AND h.received_at > al.opened_at AND h.received_at <= p_now
                       AND h.kind IN ('ok', 'start')),
                    (SELECT CASE WHEN a.status = 'late' AND a.last_seen IS NOT NULL
                                 THEN least(a.last_seen, a.status_since) ELSE a.status_since END
                     FROM agents a WHERE a.agent_id = al.agent_id)),
                                       al.opened_at)
            WHERE al.alert_key = ANY (v_back) AND al.resolved_at IS NULL
            RETURNING al.*, (SELECT a.status FROM agents a WHERE a.agent_id = al.agent_id) AS agent_status
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
    END IF;

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
    -- ended, dead-lettered tasks) and reminders while an alert stays open. Claiming by UPDATE ... RETURNING makes a
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
          AND al.kind IN ('agent_down', 'incident', 'task_dead')
          AND (g.silenced_until IS NULL OR g.silenced_until <= p_now)
          -- a fleet file's weekly silence windows (fleet.in_silence_window)
          AND NOT (g.config ? 'silence_windows' AND fleet.in_silence_window(g.config, p_now))
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

    RETURN QUERY SELECT * FROM unnest(v_changes)
                 UNION ALL SELECT * FROM unnest(v_bounces) b WHERE b.to_status <> 'down';
END;
$$;

