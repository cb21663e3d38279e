-- Dead letters raise one alert per task kind ('task_dead:<kind>'), opened in the transaction that
-- dead-letters the task. Its notices are queued by the next health evaluation (step 6 of
-- fleet.evaluate_health sends opened notices and hourly reminders for task_dead alerts too), so
-- the agent calls that dead-letter a task need not know the alert channels. The alert is
-- resolved by fleet.check_task_alerts once no dead letter of its kind is left (the
-- dead_letter_job requeued or dropped them).
--
-- Opening waits at most 200 ms for a concurrent transaction opening the same alert (an agent's
-- session could hold one open): the health evaluation must not wait on an agent, and the other
-- transaction opens the alert anyway; check_task_alerts is the backstop if it rolls back.
CREATE OR REPLACE FUNCTION fleet.open_task_alerts(p_kinds text[]) RETURNS void
LANGUAGE plpgsql SET search_path = fleet, pg_temp SET lock_timeout = '200ms'
AS $$
BEGIN
    IF coalesce(cardinality(p_kinds), 0) = 0 THEN
        RETURN;
    END IF;
    BEGIN
        INSERT INTO alerts (alert_key, kind, severity, subject, message, details, opened_at)
        SELECT 'task_dead:' || k, 'task_dead', 'warning', format('tasks of kind %s were dead-lettered', k),
               format('A task of kind %s used up its attempts. Requeue or drop the dead letters with '
                      || 'dead_letter_job in the Dagster Launchpad; the task_queue asset lists them.', k),
               jsonb_build_object('task_kind', k), now()
        FROM unnest(p_kinds) k
        WHERE NOT EXISTS (SELECT 1 FROM alerts al WHERE al.alert_key = 'task_dead:' || k AND al.resolved_at IS NULL)
        ORDER BY k
        ON CONFLICT (alert_key) WHERE resolved_at IS NULL DO NOTHING;
    EXCEPTION WHEN lock_not_available THEN
        NULL;
    END;
END;
$$;

-- Resolves the task_dead alerts whose kind has no dead letter left, and opens the missing ones
-- (a backstop for an opening that was rolled back). Run by the task_queue sensor and asset, and
-- by dead_letter_job, with the channels configured in their environment.
CREATE OR REPLACE FUNCTION fleet.check_task_alerts(p_now timestamptz, p_channels text[])
RETURNS integer
LANGUAGE plpgsql SET search_path = fleet, pg_temp SET TimeZone = 'UTC'
AS $$
DECLARE
    v_resolved integer;
BEGIN
    SELECT count(fleet.clear_alert(al.alert_key, p_now, p_channels)) INTO v_resolved
    FROM alerts al
    WHERE al.kind = 'task_dead' AND al.resolved_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.state = 'dead' AND t.kind = al.details ->> 'task_kind');
    PERFORM fleet.open_task_alerts(ARRAY(SELECT DISTINCT t.kind FROM tasks t WHERE t.state = 'dead'));
    RETURN v_resolved;
END;
$$;
