-- A ping's body as a heartbeat message: within fleet.heartbeat_message_cap() bytes it is kept
-- whole; a longer one (p_received_bytes is the size the HTTP server received, which may exceed
-- what it passed on) is cut at a character boundary and ends with a marker saying so, the
-- marker included in the cap, so the stored message is never over it. A NULL body is no message.
CREATE OR REPLACE FUNCTION fleet.cut_message(p_message text, p_received_bytes bigint)
RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = fleet, pg_temp
AS $$
DECLARE
    v_cap constant integer := fleet.heartbeat_message_cap();
    v_size bigint := greatest(coalesce(p_received_bytes, 0), octet_length(p_message));
    v_marker text;
    v_kept text;
BEGIN
    IF p_message IS NULL OR v_size <= v_cap THEN
        RETURN p_message;
    END IF;
    v_marker := '… [cut: ' || v_size || ' bytes received]';
    -- At most as many characters as bytes are allowed, then shorter until the bytes fit: a
    -- character is 1 to 4 bytes, so each pass drops at least a quarter of the excess.
    v_kept := left(p_message, v_cap - octet_length(v_marker));
    WHILE octet_length(v_kept) > v_cap - octet_length(v_marker) LOOP
        v_kept := left(v_kept, length(v_kept)
                               - greatest(1, (octet_length(v_kept) - (v_cap - octet_length(v_marker))) / 4));
    END LOOP;
    RETURN v_kept || v_marker;
END;
$$;
