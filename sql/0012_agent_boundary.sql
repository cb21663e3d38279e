-- 0012: the agent boundary's tables and data (issue "Trust"). The functions that use them live
-- in sql/functions/, one file per function, re-applied when they change.
--
-- * Tokens: the client sends SHA-256(token) (its "proof"), never the token; the server keeps
--   SHA-256(proof). The stored value was SHA-256(token), so hashing it once more migrates every
--   existing token in place: agents keep working, and a read of fleet.agents or a backup no
--   longer hands out anything an agent could present.
-- * Rate limits: a token bucket per agent and kind. The heartbeat bucket sits on the agent row,
--   which every heartbeat updates anyway (no extra write per heartbeat); the other kinds, and
--   the refusal counts of every kind, sit in fleet.rate_buckets.
-- * Key-value namespaces: an agent writes under '<its name>/' and under the prefixes an
--   operator granted it, so no agent can hold the row lock of another agent's key.
-- * Per-agent logins: each agent may get a database login of its own, a member of the agent
--   role with its own CONNECTION LIMIT, so one agent cannot use up the connections of all; a
--   session of such a login may act for its own agent only.
-- * Agent rows held locked: the health evaluation skips a locked row, so a session holding one
--   is tracked here, reported, and ended past a bound.

UPDATE fleet.agents SET token_hash = sha256(token_hash) WHERE token_hash IS NOT NULL;

ALTER TABLE fleet.agents
    ADD COLUMN hb_tokens double precision,          -- heartbeat bucket level (NULL: full)
    ADD COLUMN hb_refill_at timestamptz,
    ADD COLUMN db_login text UNIQUE;                -- the agent's own login (fleet.ensure_agent_login)

CREATE TABLE fleet.rate_buckets (
    agent_id        bigint NOT NULL REFERENCES fleet.agents ON DELETE CASCADE,
    kind            text NOT NULL,
    tokens          double precision NOT NULL,
    refilled_at     timestamptz NOT NULL DEFAULT now(),
    refused_total   bigint NOT NULL DEFAULT 0,
    last_refused_at timestamptz,
    throttled_since timestamptz,                    -- start of the current run of refusals
    PRIMARY KEY (agent_id, kind)
) WITH (fillfactor = 70);                           -- room for HOT updates of a hot row

CREATE TABLE fleet.rate_limit_overrides (
    agent_id   bigint NOT NULL REFERENCES fleet.agents ON DELETE CASCADE,
    kind       text NOT NULL,
    rate_per_s double precision NOT NULL CHECK (rate_per_s > 0),
    burst      double precision NOT NULL CHECK (burst >= 1),
    PRIMARY KEY (agent_id, kind)
);

-- Defaults, per kind: sustained rate and burst. Heartbeats and messages count calls' items,
-- metrics count samples, conversations and help requests count calls.
INSERT INTO fleet.system_config (key, value, description) VALUES
    ('rate_limit:heartbeats', '{"rate_per_s": 2, "burst": 120}', 'heartbeats per agent: sustained rate and burst'),
    ('rate_limit:messages', '{"rate_per_s": 20, "burst": 600}', 'messages sent per agent'),
    ('rate_limit:conversations', '{"rate_per_s": 20, "burst": 600}', 'LLM conversations recorded per agent'),
    ('rate_limit:metrics', '{"rate_per_s": 50, "burst": 3000}', 'metric samples reported per agent'),
    ('rate_limit:help_requests', '{"rate_per_s": 0.05, "burst": 10}', 'help requests per agent'),
    ('rate_limit:kv_writes', '{"rate_per_s": 50, "burst": 1000}', 'key-value writes per agent')
ON CONFLICT (key) DO NOTHING;

CREATE TABLE fleet.kv_grants (
    agent_id  bigint NOT NULL REFERENCES fleet.agents ON DELETE CASCADE,
    prefix    text NOT NULL CHECK (length(prefix) BETWEEN 1 AND 512 AND prefix !~ '[[:cntrl:]]'),
    can_write boolean NOT NULL DEFAULT false,
    PRIMARY KEY (agent_id, prefix)
);

-- No foreign key to fleet.agents: its check would take a key-share lock on the held row and
-- turn the holder's transaction id in xmax into a multixact.
CREATE TABLE fleet.agent_row_locks (
    agent_id      bigint PRIMARY KEY,
    holder_pid    integer NOT NULL,
    holder_xid    text NOT NULL,                    -- the same holder is the same transaction
    holder_login  text,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    ended_at      timestamptz                       -- when the evaluation ended the session
);

SELECT fleet.apply_security();
