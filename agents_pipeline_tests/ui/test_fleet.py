"""The demo fleet: real agent processes, registered by pid, heartbeating with their own tokens."""

from __future__ import annotations

import os
import time

import psutil
import pytest

from agents_pipeline.core.registry import token_hash
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.demo.agent import DemoAgent
from agents_pipeline.demo.fleet import Fleet, ensure_demo_agent, set_pid
from agents_pipeline.demo.profiles import PRODUCER, PROFILES, Profile, fleet


def _q(database, sql, params=()):
    def work(cur):
        cur.execute(sql, params)
        return [tuple(row) for row in cur.fetchall()]

    return database.transaction(work)


def test_fleet_runs_one_process_per_agent_and_restarts_crashes(db_url, database):
    demo = Fleet(db_url, 3, period_s=1, grace_s=1, restart_scale=0.01, seed=7, produce_every_s=0.5)
    demo.start()
    try:
        pids = dict(_q(database, "SELECT name, process_pid FROM fleet.agents WHERE name <> %s", (PRODUCER,)))
        assert set(pids) == {"demo-planner", "demo-researcher", "demo-crawler"}
        for name, pid in pids.items():
            proc = psutil.Process(pid)
            assert "agents_pipeline.demo.agent" in " ".join(proc.cmdline()) and name in proc.cmdline()
            assert os.environ.get("AGENTS_PIPELINE_AGENT_TOKEN") not in proc.cmdline()
        deadline = time.monotonic() + 25
        crawler = next(m for m in demo.members if m.name == "demo-crawler")
        while time.monotonic() < deadline and crawler.starts < 2:
            demo.poll()
            time.sleep(0.2)
        assert crawler.starts >= 2 and 3 in crawler.exits  # a simulated crash, then a restart
        time.sleep(1.5)
        demo.poll()
    finally:
        demo.stop()
    assert all(m.proc is None for m in demo.members)
    for pid in pids.values():
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    rows = dict((r[0], r[1:]) for r in _q(database, """
        SELECT a.name, count(h.*) FILTER (WHERE h.kind = 'start'), count(h.*) FILTER (WHERE h.kind IN ('ok', 'fail')),
               (SELECT count(*) FROM fleet.llm_conversations c WHERE c.agent_id = a.agent_id), a.process_pid
        FROM fleet.agents a LEFT JOIN fleet.heartbeats h USING (agent_id) WHERE a.name <> %s
        GROUP BY a.agent_id, a.name""", (PRODUCER,)))
    for name, (starts, finishes, conversations, pid) in rows.items():
        assert starts >= 2 and finishes >= 1 and conversations >= 1, name
        assert pid is None, f"{name}: a stopped agent keeps no pid"
    # Tasks flowed: the producer submitted them, members claimed them by capability.
    done = _q(database, """SELECT t.kind, a.name, a.capabilities FROM fleet.tasks t
                           JOIN fleet.agents a ON a.agent_id = t.claimed_by WHERE t.state = 'done'""")
    assert done and all(kind in caps for kind, _, caps in done)
    assert demo.submitted >= 5 and _q(database, "SELECT count(*) FROM fleet.tasks") == [(demo.submitted,)]
    assert _q(database, "SELECT lifecycle FROM fleet.agents WHERE name = 'demo-planner'") == [("stopped",)]


def test_the_crashy_agents_tasks_move_to_another_agent(db_url, database):
    """The demo's story: the crawler crashes with tasks in hand; once the health evaluation marks
    it down they go back to the queue, and another agent that can crawl completes them."""
    (planner, steady), _, (crawler, crashy) = fleet(3)
    tokens = {name: ensure_demo_agent(database, name, p, period_s=1, grace_s=0)
              for name, p in ((planner, steady), (crawler, crashy))}
    with SharedState(db_url, agent=PRODUCER, retry_window=5) as operator:
        ensure_demo_agent(database, PRODUCER, Profile("producer", "producer"), period_s=60, grace_s=60)
        ids = sorted(operator.submit_task("crawl", {"n": i}, capability="crawl") for i in range(3))
    with SharedState(db_url, agent=crawler, token=tokens[crawler], retry_window=5) as state:
        state.heartbeat()
        assert sorted(DemoAgent(state, crawler, crashy, 1.0, seed=1).crash_with_tasks()) == ids
    _q(database, "SELECT count(*) FROM fleet.evaluate_health(now() + interval '5 seconds', ARRAY['log'])")
    with SharedState(db_url, agent=planner, token=tokens[planner], retry_window=5) as state:
        agent = DemoAgent(state, planner, steady, 1.0, seed=1)
        assert agent.work_tasks() + agent.work_tasks() == 3
    assert _q(database, """SELECT t.state, t.attempts, a.name, t.last_error FROM fleet.tasks t
                           JOIN fleet.agents a ON a.agent_id = t.claimed_by ORDER BY t.task_id""") == [
        ("done", 2, planner, f"released: its agent was marked down (held by {crawler})")] * 3


def test_reregistering_keeps_history_and_replaces_the_token(database):
    """Regression: a restarted fleet must reuse the registry row (and its history), not fail."""
    name, profile = fleet(1)[0]
    first = ensure_demo_agent(database, name, profile, period_s=10, grace_s=5)
    set_pid(database, name, os.getpid())
    second = ensure_demo_agent(database, name, profile, period_s=20, grace_s=5)
    assert first != second
    rows = _q(database, """SELECT count(*), min(process_pid), min(extract(epoch FROM period)),
                                  bool_and(token_hash = %s), min(config->>'profile')
                           FROM fleet.agents""", (token_hash(second),))
    assert rows == [(1, os.getpid(), 20, True, profile.name)]


def test_fleet_names_are_stable_and_sized():
    names = [n for n, _ in fleet(8)]
    assert len(set(names)) == 8 and names[:2] == ["demo-planner", "demo-researcher"]
    assert names[len(PROFILES)] == "demo-planner-2"
    with pytest.raises(ValueError, match="at least one agent"):
        fleet(0)
