-- 0014: tasks handed out by capability (issue #18, "Tasks"), and the capabilities broadcasts and
-- peer listings use ("Messages and discovery"). The functions live in sql/functions/
-- (submit_task, claim_tasks, complete_task, fail_task, extend_task, get_task, release_tasks,
-- task_alerts, broadcast_message, list_peers), one home each, re-applied when they change.
--
-- A task is 'ready' (waiting for run_after), 'claimed' (by one agent, under one attempt id, until
-- lease_until), then 'done', 'failed' (its agent gave up on it for good) or 'dead' (its attempts
-- ran out: a dead letter, with an alert). Every claim makes a new attempt id and counts an
-- attempt; complete, fail and extend must present the attempt id, so an attempt whose task was
-- released and claimed again can no longer touch it.
--
-- Dedupe keys are unique per submitter, not globally: with one global namespace an agent could
-- submit under another agent's key first, so that the other's real task is dropped as a duplicate
-- and the id it gets back is the squatter's task (the same reasoning as message client ids and
-- key-value namespaces). Two agents that want one shared idempotent task agree on a submitter.
--
-- No foreign keys to fleet.agents on submitted_by and claimed_by: each check would take a
-- key-share lock on the agent's row on every claim, turning the heartbeat writer's xmax into a
-- multixact (see 0012's fleet.agent_row_locks). Agents are not deleted while they hold tasks.

CREATE TABLE fleet.tasks (
    task_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL,                       -- what to do; 1-200 of [A-Za-z0-9_.:/-]
    capability   text,                                -- who may do it; NULL: any agent
    payload      jsonb NOT NULL DEFAULT '{}'::jsonb,  -- at most 256 KiB (checked by submit_task)
    priority     integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),  -- higher first
    run_after    timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'ready' CHECK (state IN ('ready', 'claimed', 'done', 'failed', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,          -- claims so far
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts BETWEEN 1 AND 100),
    dedupe_key   text,
    submitted_by bigint NOT NULL,
    claimed_by   bigint,                              -- the current (state 'claimed') or last holder
    attempt_id   uuid,                                -- the current or last attempt
    claimed_at   timestamptz,
    lease        interval,                            -- what the holder asked for; heartbeats renew it
    lease_until  timestamptz,
    renew_at     timestamptz,                         -- half the lease gone: the holder's next heartbeat renews it
    result       jsonb,                               -- at most 256 KiB
    last_error   text,                                -- at most 8 KiB
    failed_at    timestamptz,                         -- the latest failed or released attempt
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz,                         -- done, failed or dead
    CHECK (state <> 'claimed' OR (claimed_by IS NOT NULL AND attempt_id IS NOT NULL AND lease_until IS NOT NULL))
);

-- The claim path: ready tasks in the order they are handed out (priority, then age).
CREATE INDEX tasks_ready_idx ON fleet.tasks (priority DESC, task_id) WHERE state = 'ready';
-- Expired leases (released by the next claim), stuck tasks (the task_queue check).
CREATE INDEX tasks_lease_idx ON fleet.tasks (lease_until) WHERE state = 'claimed';
-- A holder's tasks: renewed by its heartbeats (renew_at in the index, so a heartbeat whose
-- agent's leases are all fresh reads no task row), released when the health evaluation marks it down.
CREATE INDEX tasks_holder_idx ON fleet.tasks (claimed_by, renew_at) WHERE state = 'claimed';
CREATE UNIQUE INDEX tasks_dedupe_idx ON fleet.tasks (submitted_by, dedupe_key) WHERE dedupe_key IS NOT NULL;
-- The queue report: throughput, failures and dead letters per kind without reading every done task.
CREATE INDEX tasks_finished_idx ON fleet.tasks (finished_at) WHERE state = 'done';
CREATE INDEX tasks_failed_idx ON fleet.tasks (failed_at) WHERE failed_at IS NOT NULL;
CREATE INDEX tasks_dead_idx ON fleet.tasks (kind) WHERE state = 'dead';

-- What each agent may claim, granted by an operator (`agents-pipeline agents capabilities`, and
-- later fleet.yaml). Empty: only tasks submitted without a capability.
ALTER TABLE fleet.agents ADD COLUMN capabilities text[] NOT NULL DEFAULT '{}';

-- Submissions, claims and lease extensions draw on a token bucket per agent, like messages; so
-- does listing one's peers (fleet.list_peers), on a bucket of its own. A broadcast draws one
-- 'messages' token per copy.
INSERT INTO fleet.system_config (key, value, description) VALUES
    ('rate_limit:tasks', '{"rate_per_s": 50, "burst": 1000}',
     'task submissions, claim calls and lease extensions per agent'),
    ('rate_limit:peers', '{"rate_per_s": 1, "burst": 60}', 'peer listings per agent')
ON CONFLICT (key) DO NOTHING;

SELECT fleet.apply_security();
