-- Fails the agent's current attempt of a task. Unless p_permanent, it is retried after p_retry_in
-- (0 to 7 days), or by default after an exponential backoff: 5 s doubled per attempt so far, at
-- most an hour, stretched by up to a quarter at random so that tasks failed together do not all
-- come back at once. When its attempts are used up the task is dead-lettered ('dead', with the
-- kind's alert); p_permanent gives it up at once ('failed', no alert: the agent decided).
-- Returns the task's new state, or NULL when the agent holds no such attempt (see complete_task);
-- a retried call whose commit was lost gets the state it left.
CREATE OR REPLACE FUNCTION fleet.fail_task(
    p_agent text, p_proof bytea, p_task_id bigint, p_attempt_id uuid, p_error text,
    p_retry_in interval, p_permanent boolean
) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
    v_state text;
    v_kind text;
BEGIN
    IF octet_length(p_error) > 8192 THEN
        RAISE EXCEPTION 'task error larger than 8192 bytes' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF p_retry_in < interval '0' OR p_retry_in > interval '7 days' THEN
        RAISE EXCEPTION 'a retry must come 0 s to 7 days later, got %', p_retry_in USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE tasks t
    SET state = CASE WHEN coalesce(p_permanent, false) THEN 'failed'
                     WHEN t.attempts >= t.max_attempts THEN 'dead' ELSE 'ready' END,
        finished_at = CASE WHEN coalesce(p_permanent, false) OR t.attempts >= t.max_attempts THEN now() END,
        run_after = now() + coalesce(p_retry_in,
                                     least(interval '1 hour', interval '5 s' * power(2, least(t.attempts - 1, 20)))
                                     * (1 + random() / 4)),
        lease_until = NULL, last_error = coalesce(p_error, 'failed'), failed_at = now()
    WHERE t.task_id = p_task_id AND t.attempt_id = p_attempt_id AND t.claimed_by = v_me AND t.state = 'claimed'
    RETURNING t.state, t.kind INTO v_state, v_kind;
    IF v_state = 'dead' THEN
        PERFORM fleet.open_task_alerts(ARRAY[v_kind]);
    END IF;
    IF v_state IS NULL THEN
        SELECT t.state INTO v_state FROM tasks t
        WHERE t.task_id = p_task_id AND t.attempt_id = p_attempt_id AND t.claimed_by = v_me
          AND t.state <> 'claimed' AND t.state <> 'done' AND t.failed_at IS NOT NULL
          AND t.last_error IS NOT DISTINCT FROM coalesce(p_error, 'failed');
    END IF;
    RETURN v_state;
END;
$$;
