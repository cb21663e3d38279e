-- Completes the agent's current attempt of a task with its result (at most 256 KiB). True when
-- stored, and also when this very attempt completed it already (a retried call whose commit was
-- lost); false when the agent holds no such attempt: its lease ran out and the task was claimed
-- again, or its agent was marked down and the task released. An attempt whose lease ran out
-- but that nobody claimed again may still complete.
CREATE OR REPLACE FUNCTION fleet.complete_task(
    p_agent text, p_proof bytea, p_task_id bigint, p_attempt_id uuid, p_result jsonb
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
BEGIN
    IF octet_length(p_result::text) > 262144 THEN
        RAISE EXCEPTION 'task result larger than 256 KiB' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    UPDATE tasks
    SET state = 'done', result = p_result, finished_at = now(), lease_until = NULL
    WHERE task_id = p_task_id AND attempt_id = p_attempt_id AND claimed_by = v_me AND state = 'claimed';
    IF FOUND THEN
        RETURN true;
    END IF;
    RETURN EXISTS (SELECT 1 FROM tasks
                   WHERE task_id = p_task_id AND attempt_id = p_attempt_id AND claimed_by = v_me AND state = 'done');
END;
$$;
