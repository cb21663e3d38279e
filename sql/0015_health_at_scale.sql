-- 0015: status changes that rewrite no index (issue #19, "Health at scale").
--
-- The health evaluation's mass cases (every agent new -> up on a first start, the whole fleet
-- down at once, the whole fleet back) update as many agent rows as there are agents. With an
-- index on fleet.agents.status, each of those updates is a new row version in a new place plus
-- an entry in every index of the table (primary key, name, ping key hash, db_login, status):
-- 480 of the 740 ms of a 10,000-agent collapse. Without it, and with room left in each page, a
-- status change is a heap-only (HOT) update, as the heartbeat path's updates of last_seen
-- already are: no index is touched.
--
-- What read the index: the not-up and down lists of the summaries (a scan of fleet.agents
-- either way, as `status <> 'up'` is) and the release of a down agent's tasks, which runs only
-- while some task is claimed and then reads the agents once (2-20 ms at 10,000-100,000 agents).
DROP INDEX IF EXISTS fleet.agents_status_idx;

-- Half of each page free for the next version of its rows: heartbeats (every agent, every
-- period) and status changes both stay HOT. An agent row is ~500 bytes: 100,000 agents take
-- 100 MB instead of 50. CLUSTER rewrites the table now so that existing pages get the room too
-- (a brief exclusive lock: ~1 s at 100,000 agents).
ALTER TABLE fleet.agents SET (fillfactor = 50);
CLUSTER fleet.agents USING agents_pkey;
