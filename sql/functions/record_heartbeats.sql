-- Heartbeats: one statement for a whole batch; a single heartbeat is a batch of one, so the
-- agent library, the CLI, the HTTP API's bearer-token batches and pgbench all run this same SQL.
-- Returns one row per input item, in input order, with an error text (and, for a rate refusal,
-- when to retry) for items that were refused; nothing is stored for those. An item's NULL proof
-- stands for the session's proof.
--
-- Authenticate before locking: the batch is checked against the registry here, without a lock;
-- fleet.store_heartbeats (the rules every way in shares: locks, caps, rate limit) then locks only
-- the rows of agents whose proof matched, so a caller naming every agent with bad tokens locks
-- nothing of theirs. An agent login's refusal reads the same for an unknown name and a wrong
-- token, and carries no agent id, so names cannot be probed.
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
-- Its statement's plan is cached once per session, as store_heartbeats' are.
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    v_operator boolean := fleet.caller_is_operator();
    v_n integer := coalesce(cardinality(p_agents), 0);
    v_session bytea := fleet.session_proof();
    v_own_login boolean := session_user ~ '_a[0-9]+_[0-9]+$';   -- an agent's own login: itself only
    v_ids bigint[];
    v_refusals text[];
BEGIN
    IF v_n > 5000 THEN
        RAISE EXCEPTION 'a heartbeat batch holds at most 5000 items, got %', v_n USING ERRCODE = 'program_limit_exceeded';
    END IF;
    IF cardinality(p_proofs) <> v_n THEN
        RAISE EXCEPTION 'heartbeat batch arrays differ in length' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- The proof is checked on the rows as they stand, before any lock.
    SELECT coalesce(array_agg(CASE WHEN (v_operator AND coalesce(i.proof, v_session) IS NULL)
                                        OR (a.token_hash = fleet.token_hash(coalesce(i.proof, v_session))
                                            AND (NOT v_own_login OR a.db_login = session_user))
                                   THEN a.agent_id END ORDER BY i.ord), '{}'),
           coalesce(array_agg(CASE WHEN v_operator AND a.agent_id IS NULL
                                   THEN 'unknown agent ' || quote_literal(coalesce(i.name, ''))
                                   ELSE 'token refused for agent ' || quote_literal(coalesce(i.name, '')) END
                              ORDER BY i.ord), '{}')
    INTO v_ids, v_refusals
    FROM unnest(p_agents, p_proofs) WITH ORDINALITY AS i(name, proof, ord)
    LEFT JOIN agents a ON a.name = i.name;

    RETURN QUERY SELECT * FROM fleet.store_heartbeats(v_ids, v_refusals, p_kinds, p_sent_at, p_messages, p_payloads);
END;
$$;
