-- The work of fleet.complete_tasks for an agent already authenticated (p_me), so that
-- fleet.complete_and_claim authenticates once per call. Not SECURITY DEFINER and never granted to
-- agents: it trusts p_me.
-- The rules it holds are described in complete_tasks.sql.
CREATE OR REPLACE FUNCTION fleet.complete_tasks_as(
    p_me bigint, p_task_ids bigint[], p_attempt_ids uuid[], p_results jsonb[]
) RETURNS SETOF bigint
LANGUAGE plpgsql SET search_path = fleet, pg_temp
SET lock_timeout = '2s'
AS $$
DECLARE
    v_me bigint := p_me;
    v_n integer := coalesce(cardinality(p_task_ids), 0);
BEGIN
    IF v_n > 1000 THEN
        RAISE EXCEPTION 'complete_tasks takes at most 1000 tasks, got %', v_n USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF coalesce(cardinality(p_attempt_ids), 0) <> v_n
       OR (p_results IS NOT NULL AND cardinality(p_results) <> v_n) THEN
        RAISE EXCEPTION 'complete_tasks: % task ids, % attempt ids and % results; they must pair up',
            v_n, coalesce(cardinality(p_attempt_ids), 0), coalesce(cardinality(p_results), 0)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM fleet.check_json_sizes(p_results, 'task result');
    RETURN QUERY
    WITH given AS (
        SELECT g.task_id, g.attempt_id, g.result
        FROM unnest(p_task_ids, p_attempt_ids, coalesce(p_results, array_fill(NULL::jsonb, ARRAY[v_n])))
             AS g(task_id, attempt_id, result)
    ), done AS (
        UPDATE tasks t
        SET state = 'done', result = g.result, finished_at = now(), lease_until = NULL
        FROM given g
        WHERE t.task_id = g.task_id AND t.attempt_id = g.attempt_id AND t.claimed_by = v_me AND t.state = 'claimed'
        RETURNING t.task_id
    )
    -- The statement's snapshot precedes its own UPDATE: 'done' below means done before this call.
    -- Looked for only when fewer tasks were completed than given (the common case skips it).
    SELECT g.task_id FROM given g
    WHERE (SELECT count(*) FROM done) < v_n
      AND g.task_id NOT IN (SELECT d.task_id FROM done d)
      AND NOT EXISTS (SELECT 1 FROM tasks t
                      WHERE t.task_id = g.task_id AND t.attempt_id = g.attempt_id AND t.claimed_by = v_me
                        AND t.state = 'done');
END;
$$;
