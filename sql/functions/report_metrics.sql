-- Metrics an agent on another host reports about itself: at most 100 names of at most 200
-- bytes per call, numbers only, sampled within the last day. Each sample draws one token of
-- the agent's 'metrics' bucket; a refusal is retry_after_s and stores nothing.
DROP FUNCTION IF EXISTS fleet.report_metrics(text, text, text, jsonb, timestamptz);
DROP FUNCTION IF EXISTS fleet.report_metrics(text, bytea, text, jsonb, timestamptz);

CREATE FUNCTION fleet.report_metrics(
    p_agent text, p_proof bytea, p_host text, p_metrics jsonb, p_sampled_at timestamptz
) RETURNS TABLE (stored integer, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_agent bigint := fleet.authenticate(p_agent, p_proof);
    v_at timestamptz := coalesce(p_sampled_at, now());
    v_keys integer;
    v_n integer;
    v_retry double precision;
BEGIN
    IF jsonb_typeof(p_metrics) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'metrics must be a JSON object of name to number' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_host IS NULL OR octet_length(p_host) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'a host name must have 1 to 255 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT count(*) INTO v_keys FROM jsonb_object_keys(p_metrics);
    IF v_keys > 100 THEN
        RAISE EXCEPTION 'at most 100 metrics per call, got %', v_keys USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_object_keys(p_metrics) k WHERE octet_length(k) NOT BETWEEN 1 AND 200) THEN
        RAISE EXCEPTION 'a metric name must have 1 to 200 bytes' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_at > now() + interval '5 minutes' OR v_at < now() - interval '1 day' THEN
        RAISE EXCEPTION 'sample time % is more than a day old or in the future', v_at USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM jsonb_each(p_metrics) e WHERE jsonb_typeof(e.value) <> 'number') THEN
        RAISE EXCEPTION 'every metric value must be a number' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_retry := fleet.take_rate(v_agent, 'metrics', v_keys);
    IF v_retry IS NOT NULL THEN
        RETURN QUERY SELECT 0, v_retry;
        RETURN;
    END IF;
    INSERT INTO perf_samples (sampled_at, host, agent_id, metric, value, source)
    SELECT v_at, p_host, v_agent, e.key, (e.value)::text::double precision, 'remote'
    FROM jsonb_each(p_metrics) e;
    GET DIAGNOSTICS v_n = ROW_COUNT;
    RETURN QUERY SELECT v_n, NULL::double precision;
END;
$$;
