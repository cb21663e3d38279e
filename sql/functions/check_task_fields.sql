-- The caps a submitted task's fields must meet, checked once for submit_task and submit_tasks
-- (their one home): kind and capability are labels (fleet.is_task_label); dedupe keys 1-200
-- bytes without control characters; priority -1000 to 1000; 1 to 100 attempts; run_after at most
-- 365 days ahead. Raises with the field named; returns nothing when all hold.
CREATE OR REPLACE FUNCTION fleet.check_task_fields(
    p_kind text, p_capability text, p_priority integer, p_max_attempts integer, p_run_after timestamptz,
    p_dedupe_keys text[]
) RETURNS void
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
BEGIN
    IF NOT fleet.is_task_label(p_kind) THEN
        RAISE EXCEPTION 'a task kind must be 1 to 200 letters, digits or _ . : / -, got %', quote_literal(left(p_kind, 60))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_capability IS NOT NULL AND NOT fleet.is_task_label(p_capability) THEN
        RAISE EXCEPTION 'a capability must be 1 to 200 letters, digits or _ . : / -, got %', quote_literal(left(p_capability, 60))
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_dedupe_keys IS NOT NULL AND EXISTS (
        SELECT 1 FROM unnest(p_dedupe_keys) k
        WHERE k IS NOT NULL AND (octet_length(k) NOT BETWEEN 1 AND 200 OR k ~ '[[:cntrl:]]')) THEN
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
END;
$$;
