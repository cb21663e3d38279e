-- Agents that keep hitting a rate limit: one alert per agent while its current run of
-- refusals (refusals less than a minute apart) has lasted p_bound, resolved once it has been
-- refused nothing for a minute.
CREATE OR REPLACE FUNCTION fleet.check_throttled_agents(p_now timestamptz, p_bound interval, p_channels text[])
RETURNS TABLE (agent_id bigint, name text, kinds text[], refused bigint, throttled_s double precision)
LANGUAGE plpgsql SET search_path = fleet, pg_temp SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    r record;
BEGIN
    PERFORM fleet.clear_alert(al.alert_key, p_now, p_channels)
    FROM alerts al
    WHERE al.kind = 'agent_throttled' AND al.resolved_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM rate_buckets b
                      WHERE 'agent_throttled:' || b.agent_id = al.alert_key
                        AND b.last_refused_at >= p_now - interval '1 minute');
    FOR r IN
        SELECT b.agent_id, a.name AS agent_name, array_agg(b.kind ORDER BY b.kind) AS kinds,
               sum(b.refused_total)::bigint AS refused, min(b.throttled_since) AS since
        FROM rate_buckets b JOIN agents a ON a.agent_id = b.agent_id
        WHERE b.last_refused_at >= p_now - interval '1 minute' AND b.throttled_since <= p_now - p_bound
        GROUP BY b.agent_id, a.name ORDER BY b.agent_id
    LOOP
        PERFORM fleet.raise_alert(
            'agent_throttled:' || r.agent_id, 'agent_throttled', 'warning', r.agent_id,
            format('agent %s is rate limited (%s)', r.agent_name, array_to_string(r.kinds, ', ')),
            format('Agent %s has been refused by its rate limits since %s (%s refusals in all): a loop, '
                   || 'or limits too low for its work (fleet.rate_limit_overrides).', r.agent_name, r.since, r.refused),
            jsonb_build_object('kinds', r.kinds, 'refused_total', r.refused, 'throttled_since', r.since),
            p_now, p_channels);
        agent_id := r.agent_id;
        name := r.agent_name;
        kinds := r.kinds;
        refused := r.refused;
        throttled_s := extract(epoch FROM p_now - r.since);
        RETURN NEXT;
    END LOOP;
END;
$$;
