-- What the server stores of a token: SHA-256 of the client's proof, itself SHA-256 of the
-- token. The token never reaches the server, and the stored value is not a proof.
DROP FUNCTION IF EXISTS fleet.token_hash(text);

-- No SET clause, so the planner inlines it into the queries that call it (a SET clause would
-- cost a settings save and restore per row); sha256 is pg_catalog's, which is searched first.
CREATE OR REPLACE FUNCTION fleet.token_hash(p_proof bytea) RETURNS bytea
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT pg_catalog.sha256(p_proof) $$;
