-- 0006: importing a legacy SQLite shared-state file (agents-pipeline migrate-sqlite).
--
-- Every imported row remembers where it came from (legacy_source, legacy_id = the SQLite
-- rowid), so counts and checksums can be recomputed over what PostgreSQL committed and a
-- re-run can tell imported history from live data. Progress is kept per source and table and
-- committed in the same transaction as each batch: a migration killed at any moment resumes
-- after its last committed batch, never duplicating or skipping a row. Rows that cannot be
-- converted are kept, with their original values and the reason, in fleet.legacy_rejects.

-- One row per legacy file imported (by its source name, the file's base name by default).
CREATE TABLE fleet.legacy_sources (
    source_id    integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 200),
    path         text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_run_at  timestamptz
);

-- Resume point and running totals per (source, legacy table), advanced with each batch.
CREATE TABLE fleet.legacy_progress (
    source_id     integer NOT NULL REFERENCES fleet.legacy_sources,
    table_name    text NOT NULL,
    last_rowid    bigint NOT NULL DEFAULT 0,
    rows_read     bigint NOT NULL DEFAULT 0,
    rows_written  bigint NOT NULL DEFAULT 0,
    rows_rejected bigint NOT NULL DEFAULT 0,
    checksum      numeric NOT NULL DEFAULT 0,  -- expected sum of per-row digests of written rows
    completed_at  timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, table_name)
);

-- Rows kept instead of dropped: original values as text (bytes escaped), their SQLite types.
CREATE TABLE fleet.legacy_rejects (
    reject_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id   integer NOT NULL REFERENCES fleet.legacy_sources,
    table_name  text NOT NULL,
    legacy_id   bigint NOT NULL,
    reason      text NOT NULL,
    original    jsonb NOT NULL,   -- {"column": "value as text" | null}
    types       jsonb NOT NULL,   -- {"column": "integer" | "real" | "text" | "blob" | "null"}
    rejected_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (source_id, table_name, legacy_id)
);

-- A report per run, for the UI and for audit.
CREATE TABLE fleet.legacy_runs (
    run_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source_id   integer REFERENCES fleet.legacy_sources,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    ok          boolean,
    report      jsonb
);

-- Which user table of which source went to which table of the legacy schema.
CREATE SCHEMA IF NOT EXISTS legacy;
CREATE TABLE fleet.legacy_user_tables (
    source_id   integer NOT NULL REFERENCES fleet.legacy_sources,
    sqlite_name text NOT NULL,
    pg_name     text NOT NULL UNIQUE,
    PRIMARY KEY (source_id, sqlite_name)
);

-- Provenance columns: nullable, no default, so adding them rewrites nothing.
ALTER TABLE fleet.agents            ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint;
ALTER TABLE fleet.heartbeats        ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint;
ALTER TABLE fleet.perf_samples      ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint,
                                    ADD COLUMN unit text, ADD COLUMN tags jsonb;
ALTER TABLE fleet.alerts            ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint;
ALTER TABLE fleet.llm_conversations ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint;
ALTER TABLE fleet.help_requests     ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint;
ALTER TABLE fleet.kv_store          ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint;
ALTER TABLE fleet.agent_messages    ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint;
ALTER TABLE fleet.system_config     ADD COLUMN legacy_source integer, ADD COLUMN legacy_id bigint;

-- Unpartitioned targets: a legacy row can exist once (the partitioned ones rely on the
-- progress row committed with each batch, which avoids an index on the hot heartbeat path).
CREATE UNIQUE INDEX alerts_legacy_idx ON fleet.alerts (legacy_source, legacy_id) WHERE legacy_source IS NOT NULL;
CREATE UNIQUE INDEX llm_conversations_legacy_idx ON fleet.llm_conversations (legacy_source, legacy_id)
    WHERE legacy_source IS NOT NULL;
CREATE UNIQUE INDEX help_requests_legacy_idx ON fleet.help_requests (legacy_source, legacy_id)
    WHERE legacy_source IS NOT NULL;
CREATE UNIQUE INDEX agent_messages_legacy_idx ON fleet.agent_messages (legacy_source, legacy_id)
    WHERE legacy_source IS NOT NULL;
