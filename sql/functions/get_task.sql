-- A task as its submitter or its current (or last) holder sees it: state, attempts, result and
-- last error. Any other agent gets no row, the same answer as for a task that does not exist,
-- so task ids cannot be probed.
CREATE OR REPLACE FUNCTION fleet.get_task(p_agent text, p_proof bytea, p_task_id bigint)
RETURNS TABLE (
    task_id bigint, kind text, capability text, state text, priority integer, attempts integer,
    max_attempts integer, run_after timestamptz, result jsonb, last_error text, submitted_by text,
    claimed_by text, created_at timestamptz, finished_at timestamptz
)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
BEGIN
    RETURN QUERY
    SELECT t.task_id, t.kind, t.capability, t.state, t.priority, t.attempts, t.max_attempts, t.run_after,
           t.result, t.last_error, s.name, c.name, t.created_at, t.finished_at
    FROM tasks t
    LEFT JOIN agents s ON s.agent_id = t.submitted_by
    LEFT JOIN agents c ON c.agent_id = t.claimed_by
    WHERE t.task_id = p_task_id AND (t.submitted_by = v_me OR t.claimed_by = v_me);
END;
$$;
