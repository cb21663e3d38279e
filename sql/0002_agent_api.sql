-- 0002: the agent API as functions.
--
-- Agents call these functions rather than writing tables, so that an agent login can be
-- granted EXECUTE on them and nothing else (see the roles migration). Each function runs
-- with a fixed search_path and checks the caller's per-agent token against the stored
-- SHA-256, so one agent cannot act under another agent's name. A login that may write
-- fleet.agents directly (the operator, the pipeline) is trusted without a token: it could
-- do the same with plain SQL anyway.

CREATE FUNCTION fleet.caller_is_operator() RETURNS boolean
LANGUAGE sql STABLE SET search_path = fleet, pg_temp
AS $$ SELECT has_table_privilege(session_user, 'fleet.agents', 'UPDATE') $$;

CREATE FUNCTION fleet.token_hash(p_token text) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT SET search_path = fleet, pg_temp
AS $$ SELECT sha256(convert_to(p_token, 'UTF8')) $$;

-- Returns the agent_id of p_agent when the caller may act for it; raises otherwise.
CREATE FUNCTION fleet.authenticate(p_agent text, p_token text) RETURNS bigint
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_hash bytea;
BEGIN
    SELECT agent_id, token_hash INTO v_id, v_hash FROM agents WHERE name = p_agent;
    IF v_id IS NULL THEN
        RAISE EXCEPTION 'unknown agent %', quote_literal(coalesce(p_agent, '')) USING ERRCODE = 'no_data_found';
    END IF;
    IF fleet.caller_is_operator() AND p_token IS NULL THEN
        RETURN v_id;
    END IF;
    IF p_token IS NULL OR v_hash IS NULL OR v_hash <> fleet.token_hash(p_token) THEN
        RAISE EXCEPTION 'token refused for agent %', quote_literal(p_agent) USING ERRCODE = 'invalid_password';
    END IF;
    RETURN v_id;
END;
$$;

-- Heartbeats: one statement for a whole batch; a single heartbeat is a batch of one, so the
-- agent library, the CLI and pgbench all run this same SQL. Returns one row per input item,
-- in input order, with an error text for items that were refused (nothing stored for them).
CREATE FUNCTION fleet.record_heartbeats(
    p_agents   text[],
    p_tokens   text[],
    p_kinds    text[],
    p_sent_at  timestamptz[],
    p_messages text[],
    p_payloads jsonb[]
) RETURNS TABLE (ord integer, agent_id bigint, received_at timestamptz, error text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_operator boolean := fleet.caller_is_operator();
BEGIN
    -- Lock the agents' rows in id order first: concurrent batches (and the health evaluator)
    -- then never wait on each other in opposite orders.
    PERFORM 1 FROM agents a WHERE a.name = ANY (p_agents) ORDER BY a.agent_id FOR NO KEY UPDATE;

    RETURN QUERY
    WITH input AS (
        SELECT i.ord::integer AS ord, i.name, i.token, coalesce(i.kind, 'ok') AS kind,
               i.sent_at, i.message, i.payload
        FROM unnest(p_agents, p_tokens, p_kinds, p_sent_at, p_messages, p_payloads)
             WITH ORDINALITY AS i(name, token, kind, sent_at, message, payload, ord)
    ), checked AS (
        SELECT i.*, a.agent_id AS aid,
               CASE
                   WHEN a.agent_id IS NULL THEN 'unknown agent ' || quote_literal(coalesce(i.name, ''))
                   WHEN i.kind NOT IN ('ok', 'start', 'fail', 'log') THEN 'invalid heartbeat kind ' || quote_literal(i.kind)
                   WHEN length(i.message) > 8192 THEN 'message longer than 8192 characters'
                   WHEN pg_column_size(i.payload) > 65536 THEN 'payload larger than 64 KiB'
                   WHEN NOT (v_operator AND i.token IS NULL)
                        AND (i.token IS NULL OR a.token_hash IS NULL OR a.token_hash <> fleet.token_hash(i.token))
                       THEN 'token refused for agent ' || quote_literal(i.name)
               END AS err
        FROM input i LEFT JOIN agents a ON a.name = i.name
    ), stored AS (
        INSERT INTO heartbeats (agent_id, received_at, sent_at, kind, message, payload)
        SELECT c.aid, now(), c.sent_at, c.kind, c.message, c.payload FROM checked c WHERE c.err IS NULL
    ), latest AS (
        SELECT DISTINCT ON (c.aid) c.aid, c.kind, c.sent_at, c.message,
               count(*) OVER (PARTITION BY c.aid) AS n,
               bool_or(c.kind = 'fail') OVER (PARTITION BY c.aid) AS any_fail
        FROM checked c WHERE c.err IS NULL AND c.kind <> 'log'
        ORDER BY c.aid, c.ord DESC
    ), touched AS (
        UPDATE agents a
        SET last_seen = now(),
            last_sent_at = l.sent_at,
            clock_skew_s = extract(epoch FROM l.sent_at - now()),
            last_kind = l.kind,
            last_message = l.message,
            run_started_at = CASE l.kind WHEN 'start' THEN now() ELSE NULL END,
            last_fail_at = CASE WHEN l.any_fail THEN now() ELSE a.last_fail_at END,
            heartbeat_count = a.heartbeat_count + l.n
        FROM latest l
        WHERE a.agent_id = l.aid
    )
    SELECT c.ord, c.aid, CASE WHEN c.err IS NULL THEN now() END, c.err
    FROM checked c ORDER BY c.ord;
END;
$$;

-- Key-value store: get, set, compare-and-set ------------------------------------------------
CREATE FUNCTION fleet.kv_get(p_key text)
RETURNS TABLE (value jsonb, version bigint, updated_by text, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$ SELECT value, version, updated_by, updated_at FROM kv_store WHERE key = p_key $$;

-- p_expected_version: NULL sets unconditionally, 0 means "must not exist yet", n means
-- "must still be at version n". Returns ok=false and the current version on a conflict.
-- p_write_id makes a retry after an ambiguous commit recognise its own write.
CREATE FUNCTION fleet.kv_set(
    p_agent text, p_token text, p_key text, p_value jsonb,
    p_expected_version bigint, p_write_id uuid
) RETURNS TABLE (ok boolean, version bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_writer text := CASE WHEN p_agent IS NULL THEN NULL ELSE p_agent END;
    v_row kv_store%ROWTYPE;
BEGIN
    IF p_agent IS NOT NULL THEN
        PERFORM fleet.authenticate(p_agent, p_token);
    ELSIF NOT fleet.caller_is_operator() THEN
        RAISE EXCEPTION 'an agent name and token are required' USING ERRCODE = 'invalid_authorization_specification';
    ELSE
        v_writer := session_user;
    END IF;
    IF pg_column_size(p_value) > 1048576 THEN
        RAISE EXCEPTION 'value for key % is larger than 1 MiB', quote_literal(p_key) USING ERRCODE = 'program_limit_exceeded';
    END IF;

    SELECT * INTO v_row FROM kv_store WHERE key = p_key FOR UPDATE;
    IF FOUND AND p_write_id IS NOT NULL AND v_row.write_id = p_write_id THEN
        RETURN QUERY SELECT true, v_row.version;           -- our own write, retried
        RETURN;
    END IF;
    IF NOT FOUND THEN
        IF p_expected_version IS NOT NULL AND p_expected_version <> 0 THEN
            RETURN QUERY SELECT false, 0::bigint;
            RETURN;
        END IF;
        INSERT INTO kv_store (key, value, version, updated_by, write_id)
        VALUES (p_key, p_value, 1, v_writer, p_write_id)
        ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN                                  -- a concurrent insert won
            RETURN QUERY SELECT false, (SELECT k.version FROM kv_store k WHERE k.key = p_key);
            RETURN;
        END IF;
        RETURN QUERY SELECT true, 1::bigint;
        RETURN;
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version <> v_row.version THEN
        RETURN QUERY SELECT false, v_row.version;
        RETURN;
    END IF;
    UPDATE kv_store k
    SET value = p_value, version = k.version + 1, updated_by = v_writer,
        write_id = p_write_id, updated_at = now()
    WHERE k.key = p_key;
    RETURN QUERY SELECT true, v_row.version + 1;
END;
$$;

-- Messages between agents -------------------------------------------------------------------
CREATE FUNCTION fleet.send_message(
    p_agent text, p_token text, p_to text, p_type text, p_payload jsonb, p_client_id uuid
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_from bigint := fleet.authenticate(p_agent, p_token);
    v_to bigint;
    v_id bigint;
BEGIN
    IF p_to IS NOT NULL THEN
        SELECT agent_id INTO v_to FROM agents WHERE name = p_to;
        IF v_to IS NULL THEN
            RAISE EXCEPTION 'unknown agent %', quote_literal(p_to) USING ERRCODE = 'no_data_found';
        END IF;
    END IF;
    IF pg_column_size(p_payload) > 262144 THEN
        RAISE EXCEPTION 'message payload larger than 256 KiB' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    INSERT INTO agent_messages (client_id, from_agent_id, to_agent_id, message_type, payload)
    VALUES (p_client_id, v_from, v_to, p_type, coalesce(p_payload, '{}'::jsonb))
    ON CONFLICT (client_id) DO NOTHING
    RETURNING message_id INTO v_id;
    IF v_id IS NULL THEN
        SELECT message_id INTO v_id FROM agent_messages WHERE client_id = p_client_id;
    END IF;
    RETURN v_id;
END;
$$;

-- Claims up to p_limit unacknowledged messages addressed to the agent (or to anyone) whose
-- lease is free. SKIP LOCKED: two consumers never claim the same message.
CREATE FUNCTION fleet.claim_messages(p_agent text, p_token text, p_limit integer, p_lease interval)
RETURNS TABLE (message_id bigint, from_agent text, message_type text, payload jsonb, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_token);
BEGIN
    RETURN QUERY
    WITH picked AS (
        SELECT m.message_id FROM agent_messages m
        WHERE m.acked_at IS NULL
          AND (m.to_agent_id = v_me OR m.to_agent_id IS NULL)
          AND (m.lease_until IS NULL OR m.lease_until < now())
        ORDER BY m.message_id
        LIMIT greatest(1, least(p_limit, 1000))
        FOR UPDATE SKIP LOCKED
    ), claimed AS (
        UPDATE agent_messages m
        SET claimed_by = v_me, claimed_at = now(), lease_until = now() + p_lease
        FROM picked WHERE m.message_id = picked.message_id
        RETURNING m.message_id, m.from_agent_id, m.message_type, m.payload, m.created_at
    )
    SELECT c.message_id, a.name, c.message_type, c.payload, c.created_at
    FROM claimed c LEFT JOIN agents a ON a.agent_id = c.from_agent_id
    ORDER BY c.message_id;
END;
$$;

CREATE FUNCTION fleet.ack_message(p_agent text, p_token text, p_message_id bigint) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_me bigint := fleet.authenticate(p_agent, p_token);
BEGIN
    UPDATE agent_messages SET acked_at = coalesce(acked_at, now())
    WHERE message_id = p_message_id AND claimed_by = v_me;
    RETURN FOUND;
END;
$$;

-- LLM conversations: idempotent on the deterministic run id ------------------------------------
CREATE FUNCTION fleet.record_conversation(
    p_agent text, p_token text, p_run_id uuid, p_conversation_id text, p_model text,
    p_prompt text, p_response text, p_prompt_tokens integer, p_completion_tokens integer,
    p_cost numeric, p_latency_ms double precision, p_error text, p_metadata jsonb,
    p_created_at timestamptz
) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_agent bigint := fleet.authenticate(p_agent, p_token);
    v_pk bigint;
BEGIN
    INSERT INTO llm_conversations (conversation_id, agent_id, run_id, model, prompt, response,
        prompt_tokens, completion_tokens, total_tokens, cost, latency_ms, error, metadata, created_at)
    VALUES (p_conversation_id, v_agent, p_run_id, p_model, p_prompt, p_response,
        p_prompt_tokens, p_completion_tokens,
        CASE WHEN p_prompt_tokens IS NULL AND p_completion_tokens IS NULL THEN NULL
             ELSE coalesce(p_prompt_tokens, 0) + coalesce(p_completion_tokens, 0) END,
        p_cost, p_latency_ms, p_error, coalesce(p_metadata, '{}'::jsonb), coalesce(p_created_at, now()))
    ON CONFLICT (run_id) DO NOTHING
    RETURNING conversation_pk INTO v_pk;
    IF v_pk IS NULL THEN
        SELECT conversation_pk INTO v_pk FROM llm_conversations WHERE run_id = p_run_id AND agent_id = v_agent;
        IF v_pk IS NULL THEN
            RAISE EXCEPTION 'run id % belongs to another agent', p_run_id USING ERRCODE = 'unique_violation';
        END IF;
    END IF;
    RETURN v_pk;
END;
$$;

-- Metrics an agent on another host reports about itself -----------------------------------------
CREATE FUNCTION fleet.report_metrics(
    p_agent text, p_token text, p_host text, p_metrics jsonb, p_sampled_at timestamptz
) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_agent bigint := fleet.authenticate(p_agent, p_token);
    v_at timestamptz := coalesce(p_sampled_at, now());
    v_n integer;
BEGIN
    IF jsonb_typeof(p_metrics) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'metrics must be a JSON object of name to number' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_at > now() + interval '5 minutes' OR v_at < now() - interval '1 day' THEN
        RAISE EXCEPTION 'sample time % is more than a day old or in the future', v_at USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_each(p_metrics) e WHERE jsonb_typeof(e.value) <> 'number') THEN
        RAISE EXCEPTION 'every metric value must be a number' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO perf_samples (sampled_at, host, agent_id, metric, value, source)
    SELECT v_at, p_host, v_agent, e.key, (e.value)::text::double precision, 'remote'
    FROM jsonb_each(p_metrics) e;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN v_n;
END;
$$;

-- Help requests ----------------------------------------------------------------------------------
CREATE FUNCTION fleet.submit_help_request(p_agent text, p_token text, p_question text, p_context jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_agent bigint := fleet.authenticate(p_agent, p_token);
    v_id bigint;
BEGIN
    IF length(btrim(coalesce(p_question, ''))) = 0 OR length(p_question) > 8192 THEN
        RAISE EXCEPTION 'a question must have 1 to 8192 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO help_requests (agent_id, requested_by, question, context)
    VALUES (v_agent, p_agent, p_question, coalesce(p_context, '{}'::jsonb))
    RETURNING request_id INTO v_id;
    RETURN v_id;
END;
$$;

CREATE FUNCTION fleet.get_help_request(p_agent text, p_token text, p_request_id bigint)
RETURNS TABLE (request_id bigint, status text, question text, answer text, sources jsonb, answered_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_agent bigint := fleet.authenticate(p_agent, p_token);
BEGIN
    RETURN QUERY SELECT h.request_id, h.status, h.question, h.answer, h.sources, h.answered_at
    FROM help_requests h WHERE h.request_id = p_request_id AND h.agent_id = v_agent;
END;
$$;

-- Creates the partitions a write needs when the janitor has not run; callable by agents so a
-- heartbeat never fails for want of a partition.
CREATE FUNCTION fleet.ensure_current_partitions() RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_today date := (now() AT TIME ZONE 'UTC')::date;
BEGIN
    RETURN fleet.ensure_partitions('heartbeats', v_today - 1, v_today + 7)
         + fleet.ensure_partitions('perf_samples', v_today - 1, v_today + 7);
END;
$$;
