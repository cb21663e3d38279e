-- Gives back a task the agent claimed but has not started (it is draining, or claimed more than
-- it will do): 'ready' at once for another agent, and the claim does not count as an attempt.
-- True when released; false when the agent holds no such attempt (see complete_task).
CREATE OR REPLACE FUNCTION fleet.release_task(p_agent text, p_proof bytea, p_task_id bigint, p_attempt_id uuid)
RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
BEGIN
    UPDATE tasks t
    SET state = 'ready', attempts = greatest(t.attempts - 1, 0), run_after = now(), lease_until = NULL,
        renew_at = NULL
    WHERE t.task_id = p_task_id AND t.attempt_id = p_attempt_id AND t.claimed_by = v_me AND t.state = 'claimed';
    RETURN FOUND;
END;
$$;
