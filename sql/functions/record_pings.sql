-- Pings from the HTTP API (`/ping/<key>[/start|/fail|/log|/<exit status>]`), a batch of them in
-- one statement: the API's group-commit writer merges concurrent requests. Each item carries the
-- SHA-256 of its ping key (the API hashes it, so no key is in statement text), its signal as the
-- URL named it, the request body as text and the body's size in bytes as received.
--
-- Authenticate before any lock: keys are matched on the rows as they stand, through the unique
-- index on the key's hash; fleet.store_heartbeats then applies the rules every heartbeat meets
-- (locks of the authenticated rows only, caps, the heartbeat rate limit). A body over the message
-- cap is cut and marked (fleet.cut_message), not refused. The signal maps to a kind: '' or 'ok'
-- a success, 'start', 'fail', 'log' themselves, an exit status 0 a success and 1-255 a failure
-- (the status is kept in the payload, with the cut's size). An unknown key and a rotated one get
-- the same answer, 'ping key refused'.
CREATE OR REPLACE FUNCTION fleet.record_pings(
    p_key_hashes bytea[],
    p_signals    text[],
    p_bodies     text[],
    p_body_bytes bigint[]
) RETURNS TABLE (ord integer, received_at timestamptz, error text, retry_after_s double precision)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = fleet, pg_temp
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_n integer := coalesce(cardinality(p_key_hashes), 0);
    v_ids bigint[];
    v_refusals text[];
    v_kinds text[];
    v_messages text[];
    v_payloads jsonb[];
BEGIN
    IF v_n > 5000 THEN
        RAISE EXCEPTION 'a ping batch holds at most 5000 items, got %', v_n USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF cardinality(p_signals) <> v_n OR cardinality(p_bodies) <> v_n OR cardinality(p_body_bytes) <> v_n THEN
        RAISE EXCEPTION 'ping batch arrays differ in length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    SELECT coalesce(array_agg(a.agent_id ORDER BY i.ord), '{}'),
           coalesce(array_agg('ping key refused'::text ORDER BY i.ord), '{}'),
           coalesce(array_agg(CASE WHEN coalesce(i.signal, '') IN ('', 'ok') THEN 'ok'
                                   WHEN i.signal IN ('start', 'fail', 'log') THEN i.signal
                                   WHEN i.signal ~ '^[0-9]{1,3}$' AND i.signal::integer <= 255
                                       THEN CASE WHEN i.signal::integer = 0 THEN 'ok' ELSE 'fail' END
                                   ELSE i.signal END ORDER BY i.ord), '{}'),
           coalesce(array_agg(fleet.cut_message(i.body, i.body_bytes) ORDER BY i.ord), '{}'),
           coalesce(array_agg(nullif(jsonb_strip_nulls(jsonb_build_object(
                        'exit_status', CASE WHEN i.signal ~ '^[0-9]{1,3}$' THEN i.signal::integer END,
                        'cut', CASE WHEN greatest(i.body_bytes, octet_length(i.body)) > fleet.heartbeat_message_cap()
                                    THEN true END,
                        'body_bytes', CASE WHEN greatest(i.body_bytes, octet_length(i.body)) > fleet.heartbeat_message_cap()
                                           THEN greatest(i.body_bytes, octet_length(i.body)) END)), '{}'::jsonb)
                              ORDER BY i.ord), '{}')
    INTO v_ids, v_refusals, v_kinds, v_messages, v_payloads
    FROM unnest(p_key_hashes, p_signals, p_bodies, p_body_bytes) WITH ORDINALITY AS i(key_hash, signal, body, body_bytes, ord)
    LEFT JOIN agents a ON sha256(a.ping_key::bytea) = i.key_hash;

    RETURN QUERY
    SELECT s.ord, s.received_at, s.error, s.retry_after_s
    FROM fleet.store_heartbeats(v_ids, v_refusals, v_kinds, array_fill(NULL::timestamptz, ARRAY[v_n]),
                                v_messages, v_payloads) s;
END;
$$;
