-- Queues a task from an agent. Idempotent on (submitter, p_dedupe_key): submitting again returns
-- the first task's id with deduplicated = true and changes nothing (a retried submission costs no
-- rate). A rate refusal comes back as retry_after_s, not as an exception, so its count commits.
-- Caps: kind and capability are labels (fleet.is_task_label); payload 256 KiB; dedupe key 1-200
-- bytes without control characters; priority -1000 to 1000; 1 to 100 attempts; run_after at most
-- 365 days ahead (earlier than now: now).
CREATE OR REPLACE FUNCTION fleet.submit_task(
    p_agent text, p_proof bytea, p_kind text, p_payload jsonb, p_capability text, p_priority integer,
    p_run_after timestamptz, p_max_attempts integer, p_dedupe_key text
) RETURNS TABLE (task_id bigint, deduplicated boolean, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
    v_id bigint;
    v_retry double precision;
BEGIN
    IF NOT fleet.is_task_label(p_kind) THEN
        RAISE EXCEPTION 'a task kind must be 1 to 200 letters, digits or _ . : / -, got %', quote_literal(left(p_kind, 60))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_capability IS NOT NULL AND NOT fleet.is_task_label(p_capability) THEN
        RAISE EXCEPTION 'a capability must be 1 to 200 letters, digits or _ . : / -, got %', quote_literal(left(p_capability, 60))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(p_payload::text) > 262144 THEN
        RAISE EXCEPTION 'task payload larger than 256 KiB' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF p_dedupe_key IS NOT NULL AND (octet_length(p_dedupe_key) NOT BETWEEN 1 AND 200 OR p_dedupe_key ~ '[[:cntrl:]]') THEN
        RAISE EXCEPTION 'a dedupe key must have 1 to 200 bytes and no control characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(p_priority, 0) NOT BETWEEN -1000 AND 1000 THEN
        RAISE EXCEPTION 'a task priority must be -1000 to 1000, got %', p_priority USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF coalesce(p_max_attempts, 5) NOT BETWEEN 1 AND 100 THEN
        RAISE EXCEPTION 'a task takes 1 to 100 attempts, got %', p_max_attempts USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_run_after > now() + interval '365 days' THEN
        RAISE EXCEPTION 'a task may run at most 365 days ahead' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    IF p_dedupe_key IS NOT NULL THEN
        SELECT t.task_id INTO v_id FROM tasks t WHERE t.submitted_by = v_me AND t.dedupe_key = p_dedupe_key;
        IF v_id IS NOT NULL THEN
            RETURN QUERY SELECT v_id, true, NULL::double precision;
            RETURN;
        END IF;
    END IF;
    v_retry := fleet.take_rate(v_me, 'tasks');
    IF v_retry IS NOT NULL THEN
        RETURN QUERY SELECT NULL::bigint, false, v_retry;
        RETURN;
    END IF;
    INSERT INTO tasks (kind, capability, payload, priority, run_after, max_attempts, dedupe_key, submitted_by)
    VALUES (p_kind, p_capability, coalesce(p_payload, '{}'::jsonb), coalesce(p_priority, 0),
            greatest(coalesce(p_run_after, now()), now()), coalesce(p_max_attempts, 5), p_dedupe_key, v_me)
    ON CONFLICT (submitted_by, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING tasks.task_id INTO v_id;
    IF v_id IS NULL THEN                       -- a concurrent submission with the same key won
        SELECT t.task_id INTO v_id FROM tasks t WHERE t.submitted_by = v_me AND t.dedupe_key = p_dedupe_key;
        RETURN QUERY SELECT v_id, true, NULL::double precision;
        RETURN;
    END IF;
    RETURN QUERY SELECT v_id, false, NULL::double precision;
END;
$$;
