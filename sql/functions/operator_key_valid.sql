-- Whether p_proof (SHA-256 of an operator API key) belongs to a live key; notes its use at most
-- once a minute (a scrape every 15 s writes no row each time). Called by api_status and
-- api_alerts only: no login may execute it (apply_security grants it to nobody).
CREATE OR REPLACE FUNCTION fleet.operator_key_valid(p_proof bytea) RETURNS boolean
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_id bigint;
    v_used timestamptz;
BEGIN
    IF p_proof IS NULL OR octet_length(p_proof) <> 32 THEN
        RETURN false;
    END IF;
    SELECT key_id, last_used_at INTO v_id, v_used
    FROM api_keys WHERE key_hash = fleet.token_hash(p_proof) AND revoked_at IS NULL;
    IF v_id IS NULL THEN
        RETURN false;
    END IF;
    IF v_used IS NULL OR v_used < now() - interval '1 minute' THEN
        UPDATE api_keys SET last_used_at = now() WHERE key_id = v_id;
    END IF;
    RETURN true;
END;
$$;
