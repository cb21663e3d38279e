-- Queues a task from an agent. Idempotent on (submitter, p_dedupe_key): submitting again returns
-- the first task's id with deduplicated = true and changes nothing (a retried submission costs no
-- rate). Not the one-task form of fleet.submit_tasks (as complete_task is of complete_tasks): with
-- a key, the batch form's set-based dedupe took twice as long for one task (405 -> 822 us). A rate refusal comes back as retry_after_s, not as an exception, so its count commits.
-- Caps: the payload 256 KiB, the other fields as fleet.check_task_fields says (run_after earlier
-- than now: now).
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
    PERFORM fleet.check_task_fields(p_kind, p_capability, p_priority, p_max_attempts, p_run_after,
                                    CASE WHEN p_dedupe_key IS NOT NULL THEN ARRAY[p_dedupe_key] END);
    IF octet_length(p_payload::text) > 262144 THEN
        RAISE EXCEPTION 'task payload larger than 256 KiB' USING ERRCODE = 'program_limit_exceeded';
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
        IF v_id IS NULL THEN                   -- and its task was deleted since: retried whole, as submit_tasks does
            RAISE EXCEPTION 'the task of dedupe key % went away during the submission; submit again',
                quote_literal(left(p_dedupe_key, 60)) USING ERRCODE = 'serialization_failure';
        END IF;
        RETURN QUERY SELECT v_id, true, NULL::double precision;
        RETURN;
    END IF;
    RETURN QUERY SELECT v_id, false, NULL::double precision;
END;
$$;
