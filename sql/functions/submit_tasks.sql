-- Queues several tasks of one kind from an agent in one statement: what submit_task does for one,
-- set-based, so that a producer queuing a batch pays one round trip, one authentication, one
-- rate draw and one durable commit for all of it (as PgQueuer's and Procrastinate's batch
-- enqueues do). 1 to 1000 payloads, 256 KiB each and 8 MiB in all; p_dedupe_keys is NULL or one
-- key (or NULL) per payload. Returns one row per payload, in their order: the task's id and
-- whether a task with that key existed already (also the second of two equal keys in one call).
-- The rate bucket is drawn once, for the tasks that are new; a refusal is one row with only
-- retry_after_s set, and queues nothing. More new tasks than the bucket's burst is an error (no
-- wait would do): split the batch.
CREATE OR REPLACE FUNCTION fleet.submit_tasks(
    p_agent text, p_proof bytea, p_kind text, p_payloads jsonb[], p_capability text, p_priority integer,
    p_run_after timestamptz, p_max_attempts integer, p_dedupe_keys text[]
) RETURNS TABLE (task_id bigint, deduplicated boolean, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_proof);
    v_n integer := coalesce(cardinality(p_payloads), 0);
    v_keys text[] := coalesce(p_dedupe_keys, array_fill(NULL::text, ARRAY[v_n]));
    v_new integer;
    v_retry double precision;
    v_ords bigint[];
    v_ids bigint[];
    v_row record;
BEGIN
    IF v_n NOT BETWEEN 1 AND 1000 THEN
        RAISE EXCEPTION 'submit_tasks takes 1 to 1000 payloads, got %', v_n USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF cardinality(v_keys) <> v_n THEN
        RAISE EXCEPTION 'submit_tasks: % payloads and % dedupe keys; they must pair up', v_n, cardinality(v_keys)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM fleet.check_task_fields(p_kind, p_capability, p_priority, p_max_attempts, p_run_after, p_dedupe_keys);
    PERFORM fleet.check_json_sizes(p_payloads, 'task payload');

    -- New: no key, or the first use of a key this agent has not used yet.
    IF p_dedupe_keys IS NULL THEN
        v_new := v_n;
    ELSE
        SELECT count(*) FILTER (WHERE k IS NULL)
               + count(DISTINCT k) FILTER (WHERE k IS NOT NULL AND NOT EXISTS (
                     SELECT 1 FROM tasks t WHERE t.submitted_by = v_me AND t.dedupe_key = k))
        INTO v_new FROM unnest(v_keys) k;
    END IF;
    IF v_new > 0 THEN
        v_retry := fleet.take_rate(v_me, 'tasks', v_new);
        IF v_retry IS NOT NULL THEN
            RETURN QUERY SELECT NULL::bigint, false, v_retry;
            RETURN;
        END IF;
    END IF;

    IF p_dedupe_keys IS NULL THEN
        -- No keys, nothing to look up: one plain INSERT. Its rows are inserted, and their ids drawn
        -- from the identity sequence, in the array's order, so the ids in ascending order are the
        -- payloads' order.
        RETURN QUERY
        WITH ins AS (
            INSERT INTO tasks (kind, capability, payload, priority, run_after, max_attempts, submitted_by)
            SELECT p_kind, p_capability, coalesce(p.payload, '{}'::jsonb), coalesce(p_priority, 0),
                   greatest(coalesce(p_run_after, now()), now()), coalesce(p_max_attempts, 5), v_me
            FROM unnest(p_payloads) AS p(payload)
            RETURNING tasks.task_id
        )
        SELECT i.task_id, false, NULL::double precision FROM ins i ORDER BY i.task_id;
        RETURN;
    END IF;

    -- Ids drawn here in the payloads' order (nextval, a volatile function, is evaluated after the
    -- ORDER BY), so tasks of equal priority are claimed in that order, as without keys. The rows
    -- go in by key: an insert that meets an equal key not yet committed waits for it, and two
    -- batches of one agent with keys [a, b] and [b, a] would otherwise wait for each other.
    WITH src AS (
        SELECT s.ord, s.payload, s.key, row_number() OVER (PARTITION BY s.key ORDER BY s.ord) AS nth
        FROM unnest(p_payloads, v_keys) WITH ORDINALITY AS s(payload, key, ord)
    ), fresh AS (
        SELECT s.ord, s.payload, s.key, nextval(pg_get_serial_sequence('fleet.tasks', 'task_id')) AS id
        FROM src s
        WHERE s.key IS NULL
           OR (s.nth = 1 AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.submitted_by = v_me AND t.dedupe_key = s.key))
        ORDER BY s.ord
    ), ins AS (
        INSERT INTO tasks (task_id, kind, capability, payload, priority, run_after, max_attempts, dedupe_key, submitted_by)
        OVERRIDING SYSTEM VALUE
        SELECT f.id, p_kind, p_capability, coalesce(f.payload, '{}'::jsonb), coalesce(p_priority, 0),
               greatest(coalesce(p_run_after, now()), now()), coalesce(p_max_attempts, 5), f.key, v_me
        FROM fresh f ORDER BY f.key, f.ord
        ON CONFLICT (submitted_by, dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
        RETURNING tasks.task_id
    )
    SELECT array_agg(f.ord), array_agg(f.id) INTO v_ords, v_ids FROM fresh f JOIN ins i ON i.task_id = f.id;

    -- A new statement: it sees the tasks a concurrent submission with the same key committed. A key
    -- whose task was deleted since (a dropped dead letter) has none: the call is retried whole.
    FOR v_row IN
        SELECT coalesce(n.id, t.task_id) AS id, n.id IS NULL AS dup, s.key
        FROM unnest(v_keys) WITH ORDINALITY AS s(key, ord)
        LEFT JOIN unnest(v_ords, v_ids) AS n(ord, id) ON n.ord = s.ord
        LEFT JOIN tasks t ON n.id IS NULL AND t.submitted_by = v_me AND t.dedupe_key = s.key
        ORDER BY s.ord
    LOOP
        IF v_row.id IS NULL THEN
            RAISE EXCEPTION 'the task of dedupe key % went away during the submission; submit again',
                quote_literal(left(v_row.key, 60)) USING ERRCODE = 'serialization_failure';
        END IF;
        task_id := v_row.id;
        deduplicated := v_row.dup;
        retry_after_s := NULL;
        RETURN NEXT;
    END LOOP;
END;
$$;
