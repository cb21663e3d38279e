-- 0007: retention and archival bookkeeping.
--
-- archive_ledger records, per table and UTC day, how far archival got, so that a run killed
-- at any step is finished or redone by the next one (the Parquet file and its manifest are the
-- archive; this table is the index and the state machine). retention_holds keeps a restored day
-- in PostgreSQL until its expiry so that the next archival run does not remove it at once.

CREATE TABLE fleet.archive_ledger (
    table_name       text NOT NULL CHECK (table_name IN (
                         'heartbeats', 'perf_samples', 'perf_rollups', 'status_changes',
                         'alerts', 'llm_runs')),
    day              date NOT NULL,
    status           text NOT NULL CHECK (status IN ('exporting', 'verified', 'archived', 'restored')),
    row_count        bigint NOT NULL DEFAULT 0 CHECK (row_count >= 0),
    content_checksum text,          -- fleet.content_checksum of the rows written, as PostgreSQL renders them
    manifest_path    text,          -- relative to the archive folder
    file_bytes       bigint,
    retention_days   integer,
    archived_at      timestamptz,   -- when the rows left PostgreSQL
    restored_at      timestamptz,
    remove_ms        double precision,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, day)
);
CREATE INDEX archive_ledger_status_idx ON fleet.archive_ledger (status, day);

CREATE TABLE fleet.retention_holds (
    table_name text NOT NULL CHECK (table_name IN (
                   'heartbeats', 'perf_samples', 'perf_rollups', 'status_changes',
                   'alerts', 'llm_runs')),
    day        date NOT NULL,
    held_until timestamptz NOT NULL,
    reason     text,
    created_by text NOT NULL DEFAULT session_user,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, day)
);
CREATE INDEX retention_holds_until_idx ON fleet.retention_holds (held_until);

-- An order-independent fingerprint of a set of rows: the count and the sum of a 60-bit prefix
-- of each row's md5 (its text form). Run with TimeZone UTC and the default float output so
-- that the text form is stable; the archiver, the restore and the backup all compare it.
CREATE FUNCTION fleet.row_fingerprint(p_row_text text) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$ SELECT ('x' || left(md5(p_row_text), 15))::bit(60)::bigint $$;
