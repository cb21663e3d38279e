-- Key-value set and compare-and-set. p_expected_version: NULL sets unconditionally, 0 means
-- "must not exist yet", n means "must still be at version n". Returns ok=false and the current
-- version on a conflict, and a rate refusal as ok=false with retry_after_s. p_write_id makes a
-- retry after an ambiguous commit recognise its own write. The key's row lock is waited for at
-- most lock_timeout (only agents granted the same prefix can hold it).
DROP FUNCTION IF EXISTS fleet.kv_set(text, text, text, jsonb, bigint, uuid);
DROP FUNCTION IF EXISTS fleet.kv_set(text, bytea, text, jsonb, bigint, uuid);

CREATE FUNCTION fleet.kv_set(
    p_agent text, p_proof bytea, p_key text, p_value jsonb,
    p_expected_version bigint, p_write_id uuid
) RETURNS TABLE (ok boolean, version bigint, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
SET lock_timeout = '2s'
AS $$
#variable_conflict use_column
DECLARE
    v_writer text := p_agent;
    v_agent bigint;
    v_row kv_store%ROWTYPE;
    v_retry double precision;
BEGIN
    IF p_agent IS NOT NULL THEN
        v_agent := fleet.authenticate(p_agent, p_proof);
        IF NOT fleet.caller_is_operator() AND NOT fleet.kv_allowed(v_agent, p_agent, p_key, true) THEN
            RAISE EXCEPTION 'agent % may not write key %: agents write under %/ and prefixes granted for writing',
                quote_literal(p_agent), quote_literal(left(p_key, 200)), p_agent
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF NOT fleet.caller_is_operator() THEN
        RAISE EXCEPTION 'an agent name and token are required' USING ERRCODE = 'invalid_authorization_specification';
    ELSE
        v_writer := session_user;
    END IF;
    IF octet_length(p_value::text) > 1048576 THEN
        RAISE EXCEPTION 'value for key % is larger than 1 MiB', quote_literal(left(p_key, 200)) USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF v_agent IS NOT NULL THEN
        v_retry := fleet.take_rate(v_agent, 'kv_writes');
        IF v_retry IS NOT NULL THEN
            RETURN QUERY SELECT false, NULL::bigint, v_retry;
            RETURN;
        END IF;
    END IF;

    SELECT * INTO v_row FROM kv_store WHERE key = p_key FOR UPDATE;
    IF FOUND AND p_write_id IS NOT NULL AND v_row.write_id = p_write_id THEN
        RETURN QUERY SELECT true, v_row.version, NULL::double precision;   -- our own write, retried
        RETURN;
    END IF;
    IF NOT FOUND THEN
        IF p_expected_version IS NOT NULL AND p_expected_version <> 0 THEN
            RETURN QUERY SELECT false, 0::bigint, NULL::double precision;
            RETURN;
        END IF;
        INSERT INTO kv_store (key, value, version, updated_by, write_id)
        VALUES (p_key, p_value, 1, v_writer, p_write_id)
        ON CONFLICT (key) DO NOTHING;
        IF NOT FOUND THEN                                  -- a concurrent insert won
            RETURN QUERY SELECT false, (SELECT k.version FROM kv_store k WHERE k.key = p_key), NULL::double precision;
            RETURN;
        END IF;
        RETURN QUERY SELECT true, 1::bigint, NULL::double precision;
        RETURN;
    END IF;
    IF p_expected_version IS NOT NULL AND p_expected_version <> v_row.version THEN
        RETURN QUERY SELECT false, v_row.version, NULL::double precision;
        RETURN;
    END IF;
    UPDATE kv_store k
    SET value = p_value, version = k.version + 1, updated_by = v_writer,
        write_id = p_write_id, updated_at = now()
    WHERE k.key = p_key;
    RETURN QUERY SELECT true, v_row.version + 1, NULL::double precision;
END;
$$;
