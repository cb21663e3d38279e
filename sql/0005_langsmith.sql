-- 0005: LangSmith sync: attribution and versioning of pulled runs, and daily usage figures.

-- Who a run belongs to, by name as the run (or the project mapping) says; agent_id follows
-- when that name is registered. content_hash is a digest of everything LangSmith returned
-- about the run, so re-reading an unchanged run writes nothing.
ALTER TABLE fleet.llm_runs
    ADD COLUMN agent_name   text,
    ADD COLUMN content_hash text;

CREATE INDEX llm_runs_trace_idx ON fleet.llm_runs (trace_id);
CREATE INDEX llm_runs_pending_start_idx ON fleet.llm_runs (project, start_time) WHERE end_time IS NULL;
CREATE INDEX llm_conversations_created_idx ON fleet.llm_conversations (created_at);

-- The precedence of two versions of one run. The run schema has no modification time, so
-- "newer" is read from the run itself: a finished run beats a pending one, then the later
-- end time, then the larger token total, then the larger cost. Composite values compare
-- field by field, so `version(new) > version(old)` is the whole rule.
CREATE TYPE fleet.llm_run_version AS (
    finished     boolean,
    end_time     timestamptz,
    total_tokens bigint,
    total_cost   numeric
);

CREATE FUNCTION fleet.llm_run_version(p_status text, p_end_time timestamptz,
                                      p_total_tokens bigint, p_total_cost numeric)
RETURNS fleet.llm_run_version
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT ROW(p_end_time IS NOT NULL OR coalesce(p_status, '') IN ('success', 'error'),
               coalesce(p_end_time, '-infinity'::timestamptz),
               coalesce(p_total_tokens, -1),
               coalesce(p_total_cost, -1))::fleet.llm_run_version
$$;

-- Daily LLM usage per agent and model, over pulled runs and local conversations alike;
-- rewritten per day by the llm_usage_daily asset.
CREATE TABLE fleet.llm_usage_daily (
    day               date NOT NULL,
    agent             text NOT NULL,           -- '(unattributed)' when nothing names one
    model             text NOT NULL,           -- '(unknown)' when the run names none
    runs              integer NOT NULL,
    errors            integer NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    total_cost        numeric NOT NULL,
    latency_p50_ms    double precision,
    latency_p95_ms    double precision,
    from_langsmith    integer NOT NULL,        -- of runs: pulled from LangSmith
    from_local        integer NOT NULL,        -- of runs: logged locally and not (yet) pulled back
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (day, agent, model)
);
