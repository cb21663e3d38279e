-- 0004: state the performance sampler keeps between samples.
--
-- Each sampling run starts with fresh psutil state, so percentages and rates come from the
-- cumulative counters of the previous sample. The counters are also stored as metrics in
-- fleet.perf_samples (cpu_time_s, io_read_bytes, net_recv_bytes, ...), but the per-process
-- counters (pid and start time, so that a restarted process is not charged a negative delta)
-- and the per-core CPU times would multiply the rows there; one row per host here holds them,
-- read and written once per sample, and its row lock serialises two samplers on one host.
CREATE TABLE fleet.perf_sampler_state (
    host       text PRIMARY KEY,
    sampled_at timestamptz NOT NULL,
    counters   jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Thresholds with a duration (CPU above 90 % for 5 minutes): a row while a rule's condition
-- holds, since when, so the alert opens once the condition has held for the rule's duration
-- and the pending state survives a restart of the sampler. ``evaluator`` is the host whose
-- sampler judges the key (remote agents are judged by the sampler that reads their reports).
CREATE TABLE fleet.perf_threshold_state (
    alert_key    text PRIMARY KEY,
    rule         text NOT NULL,
    evaluator    text NOT NULL,
    agent_id     bigint REFERENCES fleet.agents ON DELETE CASCADE,
    breach_since timestamptz NOT NULL,
    last_value   double precision,
    last_at      timestamptz NOT NULL
);
CREATE INDEX perf_threshold_state_evaluator_idx ON fleet.perf_threshold_state (evaluator);

-- Fleet-wide threshold overrides; per-agent overrides live in fleet.agents.config -> 'thresholds'.
INSERT INTO fleet.system_config (key, value, description)
VALUES ('performance.thresholds', '{}'::jsonb,
        'Fleet-wide performance threshold overrides: {rule: {"above": n, "for_s": n, "enabled": bool, "severity": text}}. '
        'Rules: cpu_percent, rss_bytes, process_missing, host_cpu_percent, host_memory_percent, disk_used_percent.')
ON CONFLICT (key) DO NOTHING;
