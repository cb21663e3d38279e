-- One token-bucket draw for an agent and kind: NULL when allowed, otherwise the seconds after
-- which p_cost tokens will be there. Operators are not limited. A refusal is counted in the
-- same row; the caller returns it as a per-item error rather than raising, so the count is
-- committed with the call. Defaults come from system_config ('rate_limit:<kind>'), overridden
-- per agent in rate_limit_overrides.
CREATE OR REPLACE FUNCTION fleet.take_rate(p_agent_id bigint, p_kind text, p_cost double precision DEFAULT 1)
RETURNS double precision
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_rate double precision;
    v_burst double precision;
    v_row rate_buckets%ROWTYPE;
    v_avail double precision;
BEGIN
    IF fleet.caller_is_operator() OR p_cost <= 0 THEN
        RETURN NULL;
    END IF;
    SELECT coalesce(o.rate_per_s, (c.value ->> 'rate_per_s')::double precision),
           coalesce(o.burst, (c.value ->> 'burst')::double precision)
    INTO v_rate, v_burst
    FROM (SELECT 1) one
    LEFT JOIN system_config c ON c.key = 'rate_limit:' || p_kind
    LEFT JOIN rate_limit_overrides o ON o.agent_id = p_agent_id AND o.kind = p_kind;
    IF v_rate IS NULL OR v_burst IS NULL THEN
        RETURN NULL;                                   -- no limit configured for this kind
    END IF;
    IF p_cost > v_burst THEN                           -- a size, not a rate: no wait would do
        RAISE EXCEPTION '% of % is more than the % a burst allows', p_cost, p_kind, v_burst
            USING ERRCODE = 'program_limit_exceeded';
    END IF;

    -- The common case in one statement (issue #18's queue benchmark): enough tokens, taken by an
    -- UPDATE that locks the row itself. Under READ COMMITTED a concurrent taker's UPDATE waits
    -- and judges the condition again on the row's newest version, so two never share a token.
    UPDATE rate_buckets b
    SET tokens = least(v_burst, b.tokens + v_rate * greatest(0, date_part('epoch', now() - b.refilled_at))) - p_cost,
        refilled_at = now()
    WHERE b.agent_id = p_agent_id AND b.kind = p_kind
      AND least(v_burst, b.tokens + v_rate * greatest(0, date_part('epoch', now() - b.refilled_at))) >= p_cost;
    IF FOUND THEN
        RETURN NULL;
    END IF;
    -- No bucket yet, or not enough tokens.
    INSERT INTO rate_buckets (agent_id, kind, tokens) VALUES (p_agent_id, p_kind, v_burst)
    ON CONFLICT (agent_id, kind) DO NOTHING;
    SELECT * INTO v_row FROM rate_buckets WHERE agent_id = p_agent_id AND kind = p_kind FOR UPDATE;
    v_avail := least(v_burst, v_row.tokens + v_rate * greatest(0, extract(epoch FROM now() - v_row.refilled_at)));
    IF v_avail >= p_cost THEN
        UPDATE rate_buckets SET tokens = v_avail - p_cost, refilled_at = now()
        WHERE agent_id = p_agent_id AND kind = p_kind;
        RETURN NULL;
    END IF;
    UPDATE rate_buckets
    SET tokens = v_avail, refilled_at = now(), refused_total = refused_total + 1,
        throttled_since = CASE WHEN last_refused_at IS NULL OR last_refused_at < now() - interval '1 minute'
                               THEN now() ELSE throttled_since END,
        last_refused_at = now()
    WHERE agent_id = p_agent_id AND kind = p_kind;
    RETURN (p_cost - v_avail) / v_rate;
END;
$$;

