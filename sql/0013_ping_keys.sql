-- 0013: ping keys (issue #17, agents over HTTP). The functions that use them live in
-- sql/functions/ (record_pings, store_heartbeats, cut_message); the API's login is made by
-- fleet.ensure_roles() and granted by fleet.apply_security().
--
-- * A ping key is a random key per agent, separate from its token: it can do one thing only,
--   send heartbeat signals for its own agent through the HTTP API (`/ping/<key>`), for shells
--   and cron jobs where a header is awkward. It is low-privilege, so operators may read it back
--   (`agents-pipeline agents ping-url NAME`); the token stays shown once and stored as a hash.
-- * The column's default is the one home of how a key is made: 256 bits from the server's
--   strong random source (two gen_random_uuid(), hashed), as base64url without padding, 43
--   characters that need no escaping in a URL. Every insert gets one, whatever path registers
--   the agent (CLI, demo, the pipeline's own agents, the SQLite import), and rotating a key is
--   `SET ping_key = DEFAULT`.
-- * The API looks keys up by their SHA-256, which it computes itself, so a key never appears in
--   statement text, pg_stat_activity or the server log; the unique index serves that lookup
--   (an agent's heartbeat updates never change the key, so they stay HOT updates).
-- * Agents' roles hold no table privilege, so no agent reads any ping key; no function returns one.

ALTER TABLE fleet.agents
    ADD COLUMN ping_key text NOT NULL
        DEFAULT rtrim(translate(encode(sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())),
                                       'base64'), '+/', '-_'), '=')
        CHECK (ping_key ~ '^[A-Za-z0-9_-]{32,64}$');

CREATE UNIQUE INDEX agents_ping_key_hash_idx ON fleet.agents (sha256(ping_key::bytea));

SELECT fleet.apply_security();
