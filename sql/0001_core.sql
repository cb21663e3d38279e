-- 0001: the shared-state schema every domain builds on.
--
-- Conventions: time is timestamptz, documents are jsonb, agents are referenced by
-- agent_id (names can be renamed). High-volume time series (heartbeats, performance
-- samples) are range-partitioned by day so that retention drops whole partitions
-- instead of running DELETE (the pg_partman / TimescaleDB approach); fleet.ensure_partitions
-- creates them ahead of time.

CREATE SCHEMA IF NOT EXISTS fleet;

-- Agent registry ------------------------------------------------------------------------
CREATE TABLE fleet.agents (
    agent_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE
                    CHECK (length(name) BETWEEN 1 AND 200 AND name !~ '[[:cntrl:]]'),
    agent_type      text NOT NULL DEFAULT 'generic',
    host            text,                                -- NULL: this host
    period          interval NOT NULL DEFAULT '60 seconds' CHECK (period >= '1 second'),
    grace           interval NOT NULL DEFAULT '30 seconds' CHECK (grace >= '0 seconds'),
    status          text NOT NULL DEFAULT 'new'
                    CHECK (status IN ('new', 'up', 'late', 'down', 'paused')),
    status_since    timestamptz NOT NULL DEFAULT now(),
    status_message  text,
    paused          boolean NOT NULL DEFAULT false,      -- sticky: heartbeats do not undo it
    silenced_until  timestamptz,                         -- maintenance window for alerts
    -- how the sampler finds the process on its host (at most one of these)
    process_pid     integer CHECK (process_pid > 0),
    process_pidfile text,
    process_match   text,
    -- identity: only a SHA-256 of the random token issued at registration
    token_hash      bytea,
    token_issued_at timestamptz,
    -- kept by the heartbeat path, read by the health evaluator (never max() over heartbeats)
    last_seen       timestamptz,                         -- database receive time
    last_sent_at    timestamptz,                         -- agent's own clock, for skew only
    clock_skew_s    double precision,
    last_kind       text,
    last_message    text,
    run_started_at  timestamptz,                         -- open 'start' signal awaiting success
    last_fail_at    timestamptz,
    heartbeat_count bigint NOT NULL DEFAULT 0,
    config          jsonb NOT NULL DEFAULT '{}'::jsonb,
    placeholder     boolean NOT NULL DEFAULT false,      -- created to keep imported references whole
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT one_process_locator CHECK (
        num_nonnulls(process_pid, process_pidfile, process_match) <= 1)
);
CREATE INDEX agents_status_idx ON fleet.agents (status);

-- Heartbeats: daily partitions on receive time ---------------------------------------------
CREATE TABLE fleet.heartbeats (
    agent_id    bigint NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    kind        text NOT NULL DEFAULT 'ok' CHECK (kind IN ('ok', 'start', 'fail', 'log')),
    message     text,
    payload     jsonb
) PARTITION BY RANGE (received_at);
CREATE INDEX heartbeats_agent_time_idx ON fleet.heartbeats (agent_id, received_at);
CREATE INDEX heartbeats_time_brin ON fleet.heartbeats USING brin (received_at);

-- Health transitions and alerting ----------------------------------------------------------
CREATE TABLE fleet.status_changes (
    change_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    bigint NOT NULL REFERENCES fleet.agents,
    from_status text NOT NULL,
    to_status   text NOT NULL,
    changed_at  timestamptz NOT NULL,     -- the deadline that was passed, not when it was noticed
    noticed_at  timestamptz NOT NULL DEFAULT now(),
    reason      text,
    message     text,
    imported    boolean NOT NULL DEFAULT false
);
CREATE INDEX status_changes_agent_idx ON fleet.status_changes (agent_id, changed_at DESC);
CREATE INDEX status_changes_time_idx ON fleet.status_changes (changed_at);

CREATE TABLE fleet.alerts (
    alert_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_key        text NOT NULL,          -- e.g. 'agent_down:42'; one open alert per key
    kind             text NOT NULL,          -- agent_down, high_cpu, process_missing, sync_failed, incident, ...
    severity         text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
    agent_id         bigint REFERENCES fleet.agents,
    subject          text NOT NULL,
    message          text,
    details          jsonb NOT NULL DEFAULT '{}'::jsonb,
    opened_at        timestamptz NOT NULL DEFAULT now(),
    last_notified_at timestamptz,
    resolved_at      timestamptz,
    imported         boolean NOT NULL DEFAULT false   -- history from a migration: never notified
);
CREATE UNIQUE INDEX alerts_one_open_per_key ON fleet.alerts (alert_key) WHERE resolved_at IS NULL;
CREATE INDEX alerts_agent_idx ON fleet.alerts (agent_id, opened_at DESC);
CREATE INDEX alerts_opened_idx ON fleet.alerts (opened_at);

-- Notification outbox: claimed with FOR UPDATE SKIP LOCKED and a lease, delivered at least once.
CREATE TABLE fleet.notifications (
    notification_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id        bigint REFERENCES fleet.alerts,
    event           text NOT NULL CHECK (event IN ('opened', 'reminder', 'resolved', 'incident')),
    channel         text NOT NULL,                    -- log, webhook, email
    idempotency_key text NOT NULL UNIQUE,
    payload         jsonb NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    lease_until     timestamptz,
    leased_by       text,
    attempts        integer NOT NULL DEFAULT 0,
    last_error      text,
    delivered_at    timestamptz,
    gave_up_at      timestamptz
);
CREATE INDEX notifications_due_idx ON fleet.notifications (next_attempt_at)
    WHERE delivered_at IS NULL AND gave_up_at IS NULL;

-- Performance: raw samples (long format, daily partitions) and hourly rollups --------------
CREATE TABLE fleet.perf_samples (
    sampled_at timestamptz NOT NULL,
    host       text NOT NULL,
    agent_id   bigint,                                 -- NULL: the host itself
    metric     text NOT NULL,
    value      double precision,
    source     text NOT NULL DEFAULT 'sampler' CHECK (source IN ('sampler', 'remote', 'imported'))
) PARTITION BY RANGE (sampled_at);
CREATE INDEX perf_samples_agent_time_idx ON fleet.perf_samples (agent_id, metric, sampled_at);
CREATE INDEX perf_samples_time_brin ON fleet.perf_samples USING brin (sampled_at);

CREATE TABLE fleet.perf_rollups (
    hour        timestamptz NOT NULL,
    host        text NOT NULL,
    agent_id    bigint,                                -- NULL: the host itself
    metric      text NOT NULL,
    samples     integer NOT NULL,
    min_value   double precision,
    mean_value  double precision,
    p50_value   double precision,
    p95_value   double precision,
    max_value   double precision,
    computed_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX perf_rollups_key ON fleet.perf_rollups (hour, host, (coalesce(agent_id, 0)), metric);

-- LLM runs pulled from LangSmith and conversations logged by agents ------------------------
CREATE TABLE fleet.llm_runs (
    run_id            uuid PRIMARY KEY,
    trace_id          uuid,
    parent_run_id     uuid,
    project           text NOT NULL,
    agent_id          bigint REFERENCES fleet.agents,
    name              text,
    run_type          text,
    status            text,
    start_time        timestamptz,
    end_time          timestamptz,
    model             text,
    prompt_tokens     bigint,
    completion_tokens bigint,
    total_tokens      bigint,
    total_cost        numeric,
    error             text,
    tags              text[],
    extra             jsonb NOT NULL DEFAULT '{}'::jsonb,
    fetched_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_runs_start_idx ON fleet.llm_runs (start_time);
CREATE INDEX llm_runs_agent_idx ON fleet.llm_runs (agent_id, start_time);
CREATE INDEX llm_runs_pending_idx ON fleet.llm_runs (project) WHERE end_time IS NULL;

CREATE TABLE fleet.llm_conversations (
    conversation_pk   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id   text,
    agent_id          bigint REFERENCES fleet.agents,
    run_id            uuid NOT NULL UNIQUE,            -- deterministic: retries never duplicate
    model             text,
    prompt            text,
    response          text,
    prompt_tokens     integer,
    completion_tokens integer,
    total_tokens      integer,
    cost              numeric,
    latency_ms        double precision,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    metadata          jsonb NOT NULL DEFAULT '{}'::jsonb,
    langsmith_sent_at timestamptz,                     -- set only after LangSmith accepted it
    push_attempts     integer NOT NULL DEFAULT 0,
    push_error        text
);
CREATE INDEX llm_conversations_agent_idx ON fleet.llm_conversations (agent_id, created_at);
CREATE INDEX llm_conversations_unsent_idx ON fleet.llm_conversations (created_at)
    WHERE langsmith_sent_at IS NULL;

-- Help requests and the knowledge base ------------------------------------------------------
CREATE TABLE fleet.help_requests (
    request_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id     bigint REFERENCES fleet.agents,       -- the agent asking or asked about
    requested_by text,
    question     text NOT NULL,
    context      jsonb NOT NULL DEFAULT '{}'::jsonb,
    status       text NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'claimed', 'answered', 'failed', 'imported')),
    claimed_by   text,
    lease_until  timestamptz,
    answer       text,
    sources      jsonb,
    error        text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    answered_at  timestamptz
);
CREATE INDEX help_requests_pending_idx ON fleet.help_requests (created_at) WHERE status IN ('pending', 'claimed');

CREATE TABLE fleet.knowledge_passages (
    passage_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    doc_path     text NOT NULL,
    section      text NOT NULL,
    anchor       text,
    body         text NOT NULL,
    content_hash text NOT NULL,
    tsv          tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('english', coalesce(section, '')), 'A') ||
                     setweight(to_tsvector('english', coalesce(body, '')), 'B')) STORED,
    loaded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_passages_tsv_idx ON fleet.knowledge_passages USING gin (tsv);
CREATE INDEX knowledge_passages_doc_idx ON fleet.knowledge_passages (doc_path);

-- Versioned key-value store ------------------------------------------------------------------
CREATE TABLE fleet.kv_store (
    key        text PRIMARY KEY CHECK (length(key) BETWEEN 1 AND 512 AND key !~ '[[:cntrl:]]'),
    value      jsonb,
    version    bigint NOT NULL DEFAULT 1 CHECK (version >= 1),
    updated_by text,
    write_id   uuid,                   -- lets a retried write recognise that it already committed
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Coordinator channel: send, claim with FOR UPDATE SKIP LOCKED, acknowledge -------------------
CREATE TABLE fleet.agent_messages (
    message_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id     uuid UNIQUE,         -- idempotency of a retried send
    from_agent_id bigint REFERENCES fleet.agents,
    to_agent_id   bigint REFERENCES fleet.agents,   -- NULL: any agent may claim it
    message_type  text NOT NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    claimed_by    bigint REFERENCES fleet.agents,
    claimed_at    timestamptz,
    lease_until   timestamptz,
    acked_at      timestamptz,
    imported      boolean NOT NULL DEFAULT false
);
CREATE INDEX agent_messages_open_idx ON fleet.agent_messages (to_agent_id, message_id) WHERE acked_at IS NULL;

-- Configuration and sync cursors --------------------------------------------------------------
CREATE TABLE fleet.system_config (
    key         text PRIMARY KEY,
    value       jsonb,
    description text,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE fleet.sync_cursors (
    name       text PRIMARY KEY,       -- e.g. 'langsmith:<project>'
    cursor     jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Daily partitions ---------------------------------------------------------------------------
-- Creates the daily partitions of a partitioned table for [first_day, last_day] that do not
-- exist yet. Partition names are <table>_pYYYYMMDD. lock_timeout keeps the DDL from queueing
-- behind a long insert and then blocking every writer behind it; a caller retries.
CREATE FUNCTION fleet.ensure_partitions(p_table text, p_first_day date, p_last_day date)
RETURNS integer
LANGUAGE plpgsql
SET search_path = fleet, pg_temp
AS $$
DECLARE
    d date;
    part text;
    created integer := 0;
BEGIN
    IF p_table NOT IN ('heartbeats', 'perf_samples') THEN
        RAISE EXCEPTION 'ensure_partitions: % is not a partitioned fleet table', p_table
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_last_day - p_first_day > 3660 THEN
        RAISE EXCEPTION 'ensure_partitions: range of % days is too large', p_last_day - p_first_day
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    d := p_first_day;
    WHILE d <= p_last_day LOOP
        part := format('%s_p%s', p_table, to_char(d, 'YYYYMMDD'));
        IF to_regclass(format('fleet.%I', part)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE fleet.%I PARTITION OF fleet.%I FOR VALUES FROM (%L) TO (%L)',
                part, p_table,
                (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END;
$$;

SET LOCAL lock_timeout = '5s';
SELECT fleet.ensure_partitions('heartbeats', (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);
SELECT fleet.ensure_partitions('perf_samples', (now() AT TIME ZONE 'UTC')::date - 1, (now() AT TIME ZONE 'UTC')::date + 7);
