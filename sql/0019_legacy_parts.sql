-- A big legacy table (heartbeats, samples) can load as several rowid ranges side by side, one
-- worker process each (agents_pipeline/defs/migration/parts.py). Each range keeps its own resume
-- point: part 0 starts after first_rowid 0 as before; part k after its first_rowid and up to
-- the next part's. The split is fixed by the first run that makes it, so a resumed run (in any
-- mode) continues exactly the same ranges. Verification sums the parts of a table.

ALTER TABLE fleet.legacy_progress
    ADD COLUMN part        smallint NOT NULL DEFAULT 0 CHECK (part >= 0),
    ADD COLUMN first_rowid bigint   NOT NULL DEFAULT 0;
ALTER TABLE fleet.legacy_progress DROP CONSTRAINT legacy_progress_pkey;
ALTER TABLE fleet.legacy_progress ADD PRIMARY KEY (source_id, table_name, part);
