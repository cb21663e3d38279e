-- What the server stores of a token: SHA-256 of the client's proof, itself SHA-256 of the
-- token. The token never reaches the server, and the stored value is not a proof.
DROP FUNCTION IF EXISTS fleet.token_hash(text);

CREATE OR REPLACE FUNCTION fleet.token_hash(p_proof bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = fleet, pg_temp
AS $$ SELECT sha256(p_proof) $$;
