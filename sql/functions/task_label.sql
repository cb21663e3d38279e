-- Whether a task kind or capability is well formed: 1 to 200 of letters, digits and _ . : / -,
-- starting with a letter or digit. Kinds and capabilities reach alert subjects, metadata keys
-- and the UI, so they are names, not free text. No SET clause, so callers inline it.
CREATE OR REPLACE FUNCTION fleet.is_task_label(p_label text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT p_label IS NOT NULL AND p_label ~ '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}$' $$;
