-- Ends the given attempts (task ids and attempt ids, side by side) without a result, when they are
-- still current (and with p_expired_only, when their lease has run out, as judged now): back
-- to 'ready' at once, so another agent can take them now, or 'dead' when their attempts are used
-- up (with the kind's alert). The attempt was counted when it was claimed; p_reason, with the
-- holder's name, becomes the task's last_error. The attempt ids make a candidate list read without
-- locks safe: an attempt that ended and was claimed again meanwhile is not the one named. Rows another session holds
-- are skipped (SKIP LOCKED): the health evaluation calls this and must never wait on an agent; a
-- later call gets them. Returns how many it released.
--
-- Callers: fleet.claim_tasks_as (leases that ran out) and fleet.evaluate_health (agents marked down).
CREATE OR REPLACE FUNCTION fleet.release_tasks(
    p_task_ids bigint[], p_attempt_ids uuid[], p_reason text, p_expired_only boolean DEFAULT false
)
RETURNS integer
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_n integer;
    v_dead text[];
BEGIN
    IF coalesce(cardinality(p_task_ids), 0) = 0 THEN
        RETURN 0;
    END IF;
    WITH picked AS (
        SELECT t.task_id FROM tasks t
        JOIN unnest(p_task_ids, p_attempt_ids) AS i(task_id, attempt_id)
          ON t.task_id = i.task_id AND t.attempt_id = i.attempt_id
        WHERE t.state = 'claimed' AND (NOT p_expired_only OR t.lease_until < now())
        ORDER BY t.task_id
        FOR UPDATE SKIP LOCKED
    ), released AS (
        UPDATE tasks t
        SET state = CASE WHEN t.attempts >= t.max_attempts THEN 'dead' ELSE 'ready' END,
            finished_at = CASE WHEN t.attempts >= t.max_attempts THEN now() END,
            run_after = now(), lease_until = NULL, failed_at = now(),
            -- the holder's name with the reason: the UI then shows where a task moved from
            last_error = p_reason || coalesce(' (held by ' || (SELECT a.name FROM agents a
                                                               WHERE a.agent_id = t.claimed_by) || ')', '')
        FROM picked p
        WHERE t.task_id = p.task_id
        RETURNING t.kind, t.state
    )
    SELECT count(*), array_agg(DISTINCT r.kind) FILTER (WHERE r.state = 'dead') INTO v_n, v_dead FROM released r;
    PERFORM fleet.open_task_alerts(v_dead);
    RETURN v_n;
END;
$$;
