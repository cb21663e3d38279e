-- The heartbeat rules after authentication, shared by every way in: fleet.record_heartbeats
-- (an agent's token proof, or an operator) and fleet.record_pings (a ping key, over HTTP). The
-- callers authenticate without a lock and pass, per item, the agent it may act for (NULL: the
-- item is refused with p_refusals' text); this locks only those agents' rows, applies the caps
-- and the heartbeat rate limit, stores, and returns one row per item, in input order, with an
-- error text (and, for a rate refusal or a busy row, when to retry) for items refused.
--
-- A busy row (its own agent's other session, an evaluation writing it) is waited for within this
-- function's lock_timeout (steps 1 and 2 say how a timeout ends). A signal (not a 'log' line)
-- also renews the leases of the tasks the agent holds (sql/0014, step 3) once half a lease has
-- passed: one probe of the holder index for an agent that holds none, no write while its leases
-- are fresh. Not SECURITY DEFINER and not
-- granted to agents or the API: it trusts its p_ids, so only the definer functions call it.
CREATE OR REPLACE FUNCTION fleet.store_heartbeats(
    p_ids      bigint[],
    p_refusals text[],
    p_kinds    text[],
    p_sent_at  timestamptz[],
    p_messages text[],
    p_payloads jsonb[]
) RETURNS TABLE (ord integer, agent_id bigint, received_at timestamptz, error text, retry_after_s double precision)
LANGUAGE plpgsql SET search_path = fleet, pg_temp
SET lock_timeout = '500ms'
-- The statements' plans are cached once per session: a custom plan for each call (the default
-- when it looks cheaper) re-plans the big statement every time and doubled the CPU per heartbeat
-- under 50 concurrent agents (benchmarks/heartbeat_ingest.py).
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_operator boolean := fleet.caller_is_operator();
    v_n integer := coalesce(cardinality(p_ids), 0);
    v_locked bigint[];
    v_wanted bigint[];
    v_distinct bigint;
    v_renew boolean := false;       -- some task of these agents has less than half its lease left
BEGIN
    IF v_n > 5000 THEN
        RAISE EXCEPTION 'a heartbeat batch holds at most 5000 items, got %', v_n USING ERRCODE = 'program_limit_exceeded';
    END IF;
    -- A NULL array stands for all NULLs (unnest pads it); any other must match p_ids.
    IF cardinality(p_refusals) <> v_n OR cardinality(p_kinds) <> v_n OR cardinality(p_sent_at) <> v_n
       OR cardinality(p_messages) <> v_n OR cardinality(p_payloads) <> v_n THEN
        RAISE EXCEPTION 'heartbeat batch arrays differ in length' USING ERRCODE = 'invalid_parameter_value';
    END IF;

    -- 1. Lock, in id order, the rows of the authenticated agents. A batch for one agent (what
    -- SharedState sends for an agent, a single ping) waits for that agent's row within the
    -- function's lock_timeout; a timeout fails the call, which the client retries, and only that
    -- agent's own sessions can hold its row. A refused item counts as another agent here.
    SELECT coalesce(array_agg(DISTINCT x) FILTER (WHERE x IS NOT NULL), '{}'),
           count(DISTINCT coalesce(x, -1))
    INTO v_wanted, v_distinct FROM unnest(p_ids) x;
    -- The same statement probes the holder index for tasks due a lease renewal (step 3), so
    -- that a heartbeat costs no statement more for it (issue #19).
    IF v_distinct = 1 THEN
        SELECT coalesce(bool_or(l.renew), false) INTO v_renew FROM (
            SELECT EXISTS (SELECT 1 FROM tasks t WHERE t.claimed_by = a.agent_id AND t.state = 'claimed'
                                                 AND t.renew_at < now()) AS renew
            FROM agents a WHERE a.agent_id = ANY (v_wanted) FOR NO KEY UPDATE) l;
        v_locked := v_wanted;
    ELSE
        -- 2. A batch for several agents takes the free rows at once and waits for the busy ones
        -- together inside a subtransaction: on a timeout they stay busy and their items are
        -- refused with 'retry'; the rest of the batch goes on.
        SELECT coalesce(array_agg(l.agent_id), '{}'), coalesce(bool_or(l.renew), false)
        INTO v_locked, v_renew FROM (
            SELECT a.agent_id,
                   EXISTS (SELECT 1 FROM tasks t WHERE t.claimed_by = a.agent_id AND t.state = 'claimed'
                                                  AND t.renew_at < now()) AS renew
            FROM agents a WHERE a.agent_id = ANY (v_wanted)
            ORDER BY a.agent_id FOR NO KEY UPDATE SKIP LOCKED) l;
        IF cardinality(v_wanted) > cardinality(v_locked) THEN
            BEGIN
                SELECT v_renew OR coalesce(bool_or(l.renew), false) INTO v_renew FROM (
                    SELECT EXISTS (SELECT 1 FROM tasks t WHERE t.claimed_by = a.agent_id AND t.state = 'claimed'
                                                          AND t.renew_at < now()) AS renew
                    FROM agents a
                    WHERE a.agent_id = ANY (v_wanted) AND NOT (a.agent_id = ANY (v_locked))
                    ORDER BY a.agent_id FOR NO KEY UPDATE) l;
                v_locked := v_wanted;
            EXCEPTION WHEN lock_not_available OR deadlock_detected THEN
                NULL;
            END;
        END IF;
    END IF;

    RETURN QUERY
    WITH lim AS (
        SELECT (c.value ->> 'rate_per_s')::double precision AS rate, (c.value ->> 'burst')::double precision AS burst
        FROM system_config c WHERE c.key = 'rate_limit:heartbeats' AND NOT v_operator
    ), input AS (
        SELECT i.ord::integer AS ord, i.aid, i.refusal, coalesce(i.kind, 'ok') AS kind,
               i.sent_at, i.message, i.payload
        FROM unnest(p_ids, p_refusals, p_kinds, p_sent_at, p_messages, p_payloads)
             WITH ORDINALITY AS i(aid, refusal, kind, sent_at, message, payload, ord)
    ), checked AS (
        SELECT i.*,
               CASE
                   WHEN i.aid IS NULL THEN coalesce(i.refusal, 'refused')
                   WHEN i.kind NOT IN ('ok', 'start', 'fail', 'log') THEN 'invalid heartbeat kind ' || quote_literal(left(i.kind, 40))
                   WHEN octet_length(i.message) > fleet.heartbeat_message_cap()
                       THEN 'message larger than ' || fleet.heartbeat_message_cap() || ' bytes'
                   WHEN octet_length(i.payload::text) > 65536 THEN 'payload larger than 64 KiB'
                   WHEN NOT (i.aid = ANY (v_locked)) THEN 'agent busy: its row is locked by another session; retry'
               END AS err
        FROM input i
    ), buckets AS (
        SELECT b.agent_id, b.rate,
               least(b.burst, coalesce(b.hb_tokens, b.burst)
                              + b.rate * greatest(0, extract(epoch FROM now() - coalesce(b.hb_refill_at, now())))) AS avail
        FROM (SELECT a.agent_id, a.hb_tokens, a.hb_refill_at,
                     coalesce(o.rate_per_s, lim.rate) AS rate, coalesce(o.burst, lim.burst) AS burst
              FROM lim CROSS JOIN agents a
              LEFT JOIN rate_limit_overrides o ON o.agent_id = a.agent_id AND o.kind = 'heartbeats'
              WHERE a.agent_id = ANY (v_locked)) b
    ), ranked AS (        -- every item; the accepted ones numbered per agent, in input order
        SELECT c.*, b.rate, b.avail,
               row_number() OVER (PARTITION BY c.aid, c.err IS NULL ORDER BY c.ord) AS rn
        FROM checked c LEFT JOIN buckets b ON b.agent_id = c.aid
    ), judged AS (
        SELECT r.*, (r.err IS NULL AND r.avail IS NOT NULL AND r.rn > floor(r.avail)) AS refused FROM ranked r
    ), stored AS (
        INSERT INTO heartbeats (agent_id, received_at, sent_at, kind, message, payload)
        SELECT j.aid, now(), j.sent_at, j.kind, j.message, j.payload FROM judged j WHERE j.err IS NULL AND NOT j.refused
    ), per_agent AS (
        SELECT j.aid, count(*) FILTER (WHERE NOT j.refused) AS n_taken,
               count(*) FILTER (WHERE NOT j.refused AND j.kind <> 'log') AS n_signals,
               count(*) FILTER (WHERE j.refused) AS n_refused,
               bool_or(j.kind = 'fail' AND NOT j.refused) AS any_fail,
               (array_agg(j.kind ORDER BY j.ord DESC) FILTER (WHERE NOT j.refused AND j.kind <> 'log'))[1] AS kind,
               (array_agg(j.sent_at ORDER BY j.ord DESC) FILTER (WHERE NOT j.refused AND j.kind <> 'log'))[1] AS sent_at,
               (array_agg(j.message ORDER BY j.ord DESC) FILTER (WHERE NOT j.refused AND j.kind <> 'log'))[1] AS message,
               (array_agg(j.payload ->> 'lifecycle' ORDER BY j.ord DESC) FILTER (WHERE NOT j.refused
                    AND j.payload ->> 'lifecycle' IN ('starting', 'running', 'draining', 'stopped')))[1] AS lifecycle,
               min(j.avail) AS avail
        FROM judged j WHERE j.err IS NULL GROUP BY j.aid
    ), touched AS (
        UPDATE agents a
        SET last_seen = CASE WHEN p.n_signals > 0 THEN now() ELSE a.last_seen END,
            last_sent_at = CASE WHEN p.n_signals > 0 THEN p.sent_at ELSE a.last_sent_at END,
            clock_skew_s = CASE WHEN p.n_signals > 0 THEN extract(epoch FROM p.sent_at - now()) ELSE a.clock_skew_s END,
            last_kind = CASE WHEN p.n_signals > 0 THEN p.kind ELSE a.last_kind END,
            last_message = CASE WHEN p.n_signals > 0 THEN p.message ELSE a.last_message END,
            run_started_at = CASE WHEN p.n_signals = 0 THEN a.run_started_at
                                  WHEN p.kind = 'start' THEN now() ELSE NULL END,
            last_fail_at = CASE WHEN p.any_fail THEN now() ELSE a.last_fail_at END,
            heartbeat_count = a.heartbeat_count + p.n_signals,
            lifecycle = coalesce(p.lifecycle, a.lifecycle),
            lifecycle_at = CASE WHEN p.lifecycle IS NULL THEN a.lifecycle_at ELSE now() END,
            hb_tokens = CASE WHEN p.avail IS NULL THEN a.hb_tokens ELSE p.avail - p.n_taken END,
            hb_refill_at = CASE WHEN p.avail IS NULL THEN a.hb_refill_at ELSE now() END
        FROM per_agent p
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
    SELECT j.ord, j.aid,
           CASE WHEN j.err IS NULL AND NOT j.refused THEN now() END,
           coalesce(j.err, CASE WHEN j.refused THEN 'rate limited: heartbeats' END),
           CASE WHEN j.err LIKE 'agent busy%' THEN 1.0::double precision
                WHEN j.refused THEN (j.rn - j.avail) / j.rate END
    FROM judged j
    ORDER BY j.ord;

    -- 3. A live agent's heartbeat renews the leases of the tasks it holds once less than half of
    -- a lease is left: a write per task every half lease, not per heartbeat. The agents whose
    -- signal (not a 'log' line) was stored are those whose last_seen is now(). The probe (made
    -- with the lock in steps 1-2) reads the holder index on (claimed_by, renew_at) only, so
    -- agents that hold no such task cost no more. A probe made before a wait for the row may
    -- see a renewal the holder then made: the UPDATE below checks renew_at again and writes nothing.
    IF v_renew THEN
        UPDATE tasks t SET lease_until = now() + t.lease, renew_at = now() + t.lease / 2
        FROM agents a
        WHERE a.agent_id = ANY (v_locked) AND a.last_seen = now() AND t.claimed_by = a.agent_id
          AND t.state = 'claimed' AND t.renew_at < now();
    END IF;
END;
$$;
