-- 0018: operator API keys, for the HTTP API's operator endpoints (issue #17): GET /v1/status,
-- GET /v1/alerts and GET /metrics. The functions that read them live in sql/functions/
-- (operator_key_valid, api_status, api_alerts).
--
-- The API's login must stay unable to do operator work on its own: it holds no table privilege,
-- so it cannot read the registry or the alerts. An operator key does not change its privileges
-- either: it is the argument of three SECURITY DEFINER functions that answer the status and the
-- alerts (read-only) to a caller presenting a live key, and refuse everyone else. So a stolen API
-- login reads nothing without a key, and a stolen key reads, but never writes, the fleet.
--
-- Keys are made by `agents-pipeline api-key create NAME` (shown once, `apk_` + 256 random bits)
-- and stored like agent tokens: SHA-256 of the client's proof, itself SHA-256 of the key, so the
-- key never travels in statement text and a read of this table yields nothing to present.
-- Revoking keeps the row (who had a key, when it was last used) and ends it at once.

CREATE TABLE fleet.api_keys (
    key_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$'),
    key_hash     bytea NOT NULL UNIQUE CHECK (octet_length(key_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,                        -- updated at most once a minute
    revoked_at   timestamptz
);

-- One live key per name, so `api-key revoke NAME` names exactly one.
CREATE UNIQUE INDEX api_keys_live_name_idx ON fleet.api_keys (name) WHERE revoked_at IS NULL;

SELECT fleet.apply_security();
