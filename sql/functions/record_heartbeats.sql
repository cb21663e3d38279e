-- Heartbeats: one statement for a whole batch; a single heartbeat is a batch of one, so the
-- agent library, the CLI and pgbench all run this same SQL. Returns one row per input item, in
-- input order, with an error text (and, for a rate refusal, when to retry) for items that were
-- refused; nothing is stored for those. An item's NULL proof stands for the session's proof.
--
-- Authenticate before locking: the batch is checked against the registry without a lock, and
-- only the rows of agents whose proof matched are locked, so a caller naming every agent with
-- bad tokens locks nothing of theirs. Rows are taken with SKIP LOCKED first; a row that is
-- busy (its own agent's other session, an evaluation writing it) is waited for within one
-- shared budget, and an item still busy after it is refused with 'retry' rather than stalling
-- the rest of the batch. The caps hold here, whatever the client checked.
DROP FUNCTION IF EXISTS fleet.record_heartbeats(text[], text[], text[], timestamptz[], text[], jsonb[]);
DROP FUNCTION IF EXISTS fleet.record_heartbeats(text[], bytea[], text[], timestamptz[], text[], jsonb[]);

CREATE FUNCTION fleet.record_heartbeats(
    p_agents   text[],
    p_proofs   bytea[],
    p_kinds    text[],
    p_sent_at  timestamptz[],
    p_messages text[],
    p_payloads jsonb[]
) RETURNS TABLE (ord integer, agent_id bigint, received_at timestamptz, error text, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
SET lock_timeout = '500ms'
AS $$
#variable_conflict use_column
DECLARE
    v_operator boolean := fleet.caller_is_operator();
    v_n integer := coalesce(cardinality(p_agents), 0);
    v_wanted bigint[];
    v_locked bigint[];
    v_id bigint;
    v_deadline timestamptz;
    v_left interval;
    v_limit jsonb;
    v_session bytea := fleet.session_proof();
    v_bound bigint := fleet.login_agent();
BEGIN
    IF v_n > 5000 THEN
        RAISE EXCEPTION 'a heartbeat batch holds at most 5000 items, got %', v_n USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- A NULL array stands for all NULLs (unnest pads it); any other must match p_agents.
    IF cardinality(p_proofs) <> v_n OR cardinality(p_kinds) <> v_n OR cardinality(p_sent_at) <> v_n
       OR cardinality(p_messages) <> v_n OR cardinality(p_payloads) <> v_n THEN
        RAISE EXCEPTION 'heartbeat batch arrays differ in length' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- 1. Who is authenticated (no lock), then lock those rows in id order, skipping busy ones.
    SELECT array_agg(DISTINCT a.agent_id ORDER BY a.agent_id) INTO v_wanted
    FROM (SELECT u.name, coalesce(u.proof, v_session) AS proof
          FROM unnest(p_agents, p_proofs) AS u(name, proof)) i
    JOIN agents a ON a.name = i.name
    WHERE ((v_operator AND i.proof IS NULL)
           OR (i.proof IS NOT NULL AND a.token_hash = fleet.token_hash(i.proof)))
      AND a.agent_id = coalesce(v_bound, a.agent_id);          -- an agent's own login: itself only
    IF v_wanted IS NULL THEN
        v_wanted := '{}';
    END IF;
    SELECT coalesce(array_agg(l.agent_id), '{}') INTO v_locked FROM (
        SELECT a.agent_id FROM agents a WHERE a.agent_id = ANY (v_wanted)
        ORDER BY a.agent_id FOR NO KEY UPDATE SKIP LOCKED) l;

    -- 2. Busy rows: wait for each within one budget (lock_timeout above), then give up on it.
    IF cardinality(v_locked) < cardinality(v_wanted) THEN
        v_deadline := clock_timestamp() + current_setting('lock_timeout')::interval;
        FOREACH v_id IN ARRAY v_wanted LOOP
            CONTINUE WHEN v_id = ANY (v_locked);
            v_left := v_deadline - clock_timestamp();
            EXIT WHEN v_left <= interval '1 millisecond';
            PERFORM set_config('lock_timeout', (ceil(extract(epoch FROM v_left) * 1000))::bigint || 'ms', true);
            BEGIN
                PERFORM 1 FROM agents a WHERE a.agent_id = v_id FOR NO KEY UPDATE;
                v_locked := v_locked || v_id;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                NULL;
            END;
        END LOOP;
    END IF;

    SELECT c.value INTO v_limit FROM system_config c WHERE c.key = 'rate_limit:heartbeats';

    -- 3. Judge every item, draw from each agent's bucket in input order, write.
    RETURN QUERY
    WITH input AS (
        SELECT i.ord::integer AS ord, i.name, i.proof, coalesce(i.kind, 'ok') AS kind,
               i.sent_at, i.message, i.payload
        FROM unnest(p_agents, p_proofs, p_kinds, p_sent_at, p_messages, p_payloads)
             WITH ORDINALITY AS i(name, proof, kind, sent_at, message, payload, ord)
    ), checked AS (
        SELECT i.*, a.agent_id AS aid,
               CASE
                   WHEN a.agent_id IS NULL OR NOT (a.agent_id = ANY (v_wanted)) THEN
                       CASE WHEN v_operator AND a.agent_id IS NULL
                            THEN 'unknown agent ' || quote_literal(coalesce(i.name, ''))
                            ELSE 'token refused for agent ' || quote_literal(coalesce(i.name, '')) END
                   WHEN i.kind NOT IN ('ok', 'start', 'fail', 'log') THEN 'invalid heartbeat kind ' || quote_literal(left(i.kind, 40))
                   WHEN octet_length(i.message) > 8192 THEN 'message larger than 8192 bytes'
                   WHEN octet_length(i.payload::text) > 65536 THEN 'payload larger than 64 KiB'
                   WHEN NOT (a.agent_id = ANY (v_locked)) THEN 'agent busy: its row is locked by another session; retry'
               END AS err
        FROM input i LEFT JOIN agents a ON a.name = i.name
    ), buckets AS (
        SELECT a.agent_id,
               coalesce(o.rate_per_s, (v_limit ->> 'rate_per_s')::double precision) AS rate,
               least(coalesce(o.burst, (v_limit ->> 'burst')::double precision),
                     coalesce(a.hb_tokens, coalesce(o.burst, (v_limit ->> 'burst')::double precision))
                     + coalesce(o.rate_per_s, (v_limit ->> 'rate_per_s')::double precision)
                       * greatest(0, extract(epoch FROM now() - coalesce(a.hb_refill_at, now())))) AS avail
        FROM agents a
        LEFT JOIN rate_limit_overrides o ON o.agent_id = a.agent_id AND o.kind = 'heartbeats'
        WHERE NOT v_operator AND v_limit IS NOT NULL AND a.agent_id = ANY (v_locked)
    ), ranked AS (
        SELECT c.*, b.rate, b.avail,
               row_number() OVER (PARTITION BY c.aid ORDER BY c.ord) AS rn
        FROM checked c LEFT JOIN buckets b ON b.agent_id = c.aid
        WHERE c.err IS NULL
    ), judged AS (
        SELECT r.*, (r.avail IS NOT NULL AND r.rn > floor(r.avail)) AS refused FROM ranked r
    ), stored AS (
        INSERT INTO heartbeats (agent_id, received_at, sent_at, kind, message, payload)
        SELECT j.aid, now(), j.sent_at, j.kind, j.message, j.payload FROM judged j WHERE NOT j.refused
    ), per_agent AS (
        SELECT j.aid, count(*) FILTER (WHERE NOT j.refused) AS n_taken,
               count(*) FILTER (WHERE NOT j.refused AND j.kind <> 'log') AS n_signals,
               count(*) FILTER (WHERE j.refused) AS n_refused,
               bool_or(j.kind = 'fail' AND NOT j.refused) AS any_fail,
               max(j.ord) FILTER (WHERE NOT j.refused AND j.kind <> 'log') AS last_ord,
               min(j.avail) AS avail
        FROM judged j GROUP BY j.aid
    ), touched AS (
        UPDATE agents a
        SET last_seen = CASE WHEN p.n_signals > 0 THEN now() ELSE a.last_seen END,
            last_sent_at = CASE WHEN p.n_signals > 0 THEN l.sent_at ELSE a.last_sent_at END,
            clock_skew_s = CASE WHEN p.n_signals > 0 THEN extract(epoch FROM l.sent_at - now()) ELSE a.clock_skew_s END,
            last_kind = CASE WHEN p.n_signals > 0 THEN l.kind ELSE a.last_kind END,
            last_message = CASE WHEN p.n_signals > 0 THEN l.message ELSE a.last_message END,
            run_started_at = CASE WHEN p.n_signals = 0 THEN a.run_started_at
                                  WHEN l.kind = 'start' THEN now() ELSE NULL END,
            last_fail_at = CASE WHEN p.any_fail THEN now() ELSE a.last_fail_at END,
            heartbeat_count = a.heartbeat_count + p.n_signals,
            hb_tokens = CASE WHEN p.avail IS NULL THEN a.hb_tokens ELSE p.avail - p.n_taken END,
            hb_refill_at = CASE WHEN p.avail IS NULL THEN a.hb_refill_at ELSE now() END
        FROM per_agent p LEFT JOIN input l ON l.ord = p.last_ord
        WHERE a.agent_id = p.aid AND p.n_taken > 0
    ), counted AS (
        INSERT INTO rate_buckets AS b (agent_id, kind, tokens, refused_total, last_refused_at, throttled_since)
        SELECT p.aid, 'heartbeats', 0, p.n_refused, now(), now() FROM per_agent p WHERE p.n_refused > 0
        ORDER BY p.aid
        ON CONFLICT (agent_id, kind) DO UPDATE
        SET refused_total = b.refused_total + EXCLUDED.refused_total,
            throttled_since = CASE WHEN b.last_refused_at IS NULL OR b.last_refused_at < now() - interval '1 minute'
                                   THEN now() ELSE b.throttled_since END,
            last_refused_at = now()
    )
    SELECT c.ord, c.aid,
           CASE WHEN c.err IS NULL AND NOT coalesce(j.refused, false) THEN now() END,
           coalesce(c.err, CASE WHEN j.refused THEN 'rate limited: heartbeats' END),
           CASE WHEN c.err LIKE 'agent busy%' THEN 1.0::double precision
                WHEN j.refused THEN (j.rn - j.avail) / j.rate END
    FROM checked c LEFT JOIN judged j ON j.ord = c.ord
    ORDER BY c.ord;
END;
$$;
