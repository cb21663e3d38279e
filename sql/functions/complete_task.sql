-- Completes the agent's current attempt of a task with its result (at most 256 KiB). True when
-- stored, and also when this very attempt completed it already (a retried call whose commit was
-- lost); false when the agent holds no such attempt: its lease ran out and the task was claimed
-- again, or its agent was marked down and the task released. An attempt whose lease ran out
-- but that nobody claimed again may still complete.
CREATE OR REPLACE FUNCTION fleet.complete_task(
    p_agent text, p_proof bytea, p_task_id bigint, p_attempt_id uuid, p_result jsonb
) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
BEGIN
    -- One home for the rules (caps, fencing, a retried call): the batch form with one task.
    -- plpgsql, not sql: its body is resolved when called, so file order does not matter.
    RETURN NOT EXISTS (SELECT 1 FROM fleet.complete_tasks(p_agent, p_proof, ARRAY[p_task_id], ARRAY[p_attempt_id],
                                                          ARRAY[p_result]));
END;
$$;
