-- The health evaluation skips an agent row some other session holds locked, so whoever holds
-- one can keep that agent from being judged. This finds such rows and their holders, keeps
-- when each hold was first seen (fleet.agent_row_locks), and past p_bound raises an alert
-- naming the holder and, when the holder is an agent login, ends its session.
--
-- The agent login runs with track_activities off, so pg_stat_activity shows no transaction
-- for it. The holder is found from the row itself: a locked row's xmax is the locking
-- transaction's id (or a multixact of several), matched to the transaction id lock that every
-- running transaction holds in pg_locks.
--
-- fleet.note_held_rows finds every agent row some other transaction holds, and its holder; keeps when each hold was
-- first seen, and forgets a hold that ended. A lone locker leaves its transaction id in the
-- row's xmax, matched here in one pass over the registry; several lockers (say the holder and
-- a message's foreign key to the agent) leave a multixact, resolved for the rows the evaluation
-- had to skip (p_ids) and those already held. Called by evaluate_health.
CREATE OR REPLACE FUNCTION fleet.note_held_rows(p_ids bigint[], p_now timestamptz) RETURNS void
LANGUAGE plpgsql SET search_path = fleet, pg_temp
AS $$
DECLARE
    r record;
    v_held bigint[];
    v_pids integer[];
    v_xids text[];
    v_members xid[];
    v_pid integer;
    v_xid text;
BEGIN
    WITH locks AS MATERIALIZED (
        SELECT l.pid, l.transactionid FROM pg_locks l
        WHERE l.locktype = 'transactionid' AND l.granted AND l.pid <> pg_backend_pid())
    SELECT coalesce(array_agg(a.agent_id ORDER BY a.agent_id), '{}'),
           coalesce(array_agg(k.pid ORDER BY a.agent_id), '{}'),
           coalesce(array_agg(a.xmax::text ORDER BY a.agent_id), '{}')
    INTO v_held, v_pids, v_xids
    FROM agents a JOIN locks k ON k.transactionid = a.xmax
    WHERE a.xmax <> '0'::xid;

    -- A key-share locker (a foreign key to the agent, from a transaction still running) blocks
    -- no evaluation: keep only the rows this session cannot lock itself.
    IF cardinality(v_held) > 0 THEN
        SELECT coalesce(array_agg(h.agent_id ORDER BY h.agent_id), '{}'),
               coalesce(array_agg(h.pid ORDER BY h.agent_id), '{}'),
               coalesce(array_agg(h.xid ORDER BY h.agent_id), '{}')
        INTO v_held, v_pids, v_xids
        FROM unnest(v_held, v_pids, v_xids) h(agent_id, pid, xid)
        WHERE NOT EXISTS (SELECT 1 FROM agents f WHERE f.agent_id = h.agent_id FOR NO KEY UPDATE SKIP LOCKED);
    END IF;

    FOR r IN SELECT a.agent_id, a.xmax FROM agents a
             WHERE (a.agent_id = ANY (p_ids) OR a.agent_id IN (SELECT k.agent_id FROM agent_row_locks k))
               AND a.xmax <> '0'::xid AND NOT (a.agent_id = ANY (v_held))
    LOOP
        BEGIN                                          -- several lockers: a multixact
            SELECT array_agg(m.xid) INTO v_members FROM pg_get_multixact_members(r.xmax) m
            WHERE m.mode IN ('nokeyupd', 'upd', 'forupd', 'fornokeyupd', 'sh');
        EXCEPTION WHEN OTHERS THEN
            v_members := NULL;
        END;
        SELECT min(l.pid), min(l.transactionid::text) INTO v_pid, v_xid FROM pg_locks l
        WHERE l.locktype = 'transactionid' AND l.granted AND l.transactionid = ANY (v_members)
          AND l.pid <> pg_backend_pid();
        IF v_pid IS NOT NULL THEN
            v_held := v_held || r.agent_id;
            v_pids := v_pids || v_pid;
            v_xids := v_xids || v_xid;
        END IF;
    END LOOP;

    DELETE FROM agent_row_locks k
    WHERE NOT EXISTS (SELECT 1 FROM unnest(v_held, v_xids) h(agent_id, xid)
                      WHERE h.agent_id = k.agent_id AND h.xid = k.holder_xid);
    INSERT INTO agent_row_locks (agent_id, holder_pid, holder_xid, holder_login, first_seen_at, last_seen_at)
    SELECT h.agent_id, h.pid, h.xid,
           (SELECT s.usename::text FROM pg_stat_activity s WHERE s.pid = h.pid), p_now, p_now
    FROM unnest(v_held, v_pids, v_xids) h(agent_id, pid, xid) ORDER BY h.agent_id
    ON CONFLICT ON CONSTRAINT agent_row_locks_pkey DO UPDATE SET last_seen_at = p_now;

END;
$$;

CREATE OR REPLACE FUNCTION fleet.check_agent_row_locks(p_now timestamptz, p_bound interval, p_channels text[])
RETURNS TABLE (agent_id bigint, name text, holder_pid integer, holder_login text, held_s double precision, ended boolean)
LANGUAGE plpgsql SET search_path = fleet, pg_temp SET TimeZone = 'UTC'
AS $$
#variable_conflict use_column
DECLARE
    r record;
    v_ended boolean;
BEGIN
    -- Alerts: open for holds past the bound, resolve for holds that ended.
    PERFORM fleet.clear_alert(al.alert_key, p_now, p_channels)
    FROM alerts al
    WHERE al.kind = 'agent_row_locked' AND al.resolved_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM agent_row_locks k WHERE 'agent_row_locked:' || k.agent_id = al.alert_key);

    FOR r IN
        SELECT k.*, a.name AS agent_name FROM agent_row_locks k JOIN agents a ON a.agent_id = k.agent_id
        WHERE p_now - k.first_seen_at >= p_bound ORDER BY k.agent_id
    LOOP
        PERFORM fleet.raise_alert(
            'agent_row_locked:' || r.agent_id, 'agent_row_locked', 'critical', r.agent_id,
            format('agent %s''s row held locked by process %s (%s)', r.agent_name, r.holder_pid,
                   coalesce(r.holder_login, 'unknown login')),
            format('A session has held agent %s''s registry row since %s, so its health could not be judged. '
                   || 'Sessions of agent logins are ended; others need an operator.',
                   r.agent_name, r.first_seen_at),
            jsonb_build_object('holder_pid', r.holder_pid, 'holder_login', r.holder_login,
                               'held_since', r.first_seen_at),
            p_now, p_channels);
        v_ended := false;
        IF r.ended_at IS NULL THEN
            BEGIN
                v_ended := fleet.end_agent_session(r.holder_pid);
            EXCEPTION WHEN insufficient_privilege OR undefined_function THEN
                v_ended := false;                      -- not an agent session, or no signaller role
            END;
            IF v_ended THEN
                UPDATE agent_row_locks SET ended_at = p_now WHERE agent_row_locks.agent_id = r.agent_id;
            END IF;
        END IF;
        agent_id := r.agent_id;
        name := r.agent_name;
        holder_pid := r.holder_pid;
        holder_login := r.holder_login;
        held_s := extract(epoch FROM p_now - r.first_seen_at);
        ended := v_ended OR r.ended_at IS NOT NULL;
        RETURN NEXT;
    END LOOP;
END;
$$;
