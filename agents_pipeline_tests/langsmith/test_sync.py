"""The pull: the real langsmith client against the local LangSmith, into a real PostgreSQL."""

from __future__ import annotations

import time
from datetime import timedelta

import sqlalchemy as sa

from agents_pipeline.defs.langsmith import store
from agents_pipeline_tests.langsmith.conftest import PROJECT


def _runs(engine, where: str = "true", **params):
    with engine.begin() as conn:
        return conn.execute(sa.text(f"SELECT * FROM fleet.llm_runs WHERE {where} ORDER BY start_time"), params).mappings().all()  # noqa: S608


def _cursor(engine):
    with engine.begin() as conn:
        return store.read_cursor(conn, PROJECT)


def test_more_than_a_thousand_runs_across_pages(fake, syncer, engine, now):
    for i in range(1234):
        fake.add_run(PROJECT, start_time=now - timedelta(minutes=600) + timedelta(seconds=20 * i),
                     end_time=now - timedelta(minutes=599) + timedelta(seconds=20 * i),
                     prompt_tokens=i, completion_tokens=1, model="gpt-4o")
    result = syncer(now)
    assert result.ok, result.error
    assert (result.runs_fetched, result.inserted, result.updated) == (1234, 1234, 0)
    # 6-hour slices of the 24-hour first window: 2 empty, then 720 runs (8 pages), 514 runs (6 pages)
    assert fake.count("POST", "/runs/query") == 16
    assert all("limit" not in b for b in fake.query_bodies)  # pages are the server's 100
    assert all(b["select"] and b["order"] == "asc" for b in fake.query_bodies)
    rows = _runs(engine)
    assert len(rows) == 1234 and sum(r["prompt_tokens"] for r in rows) == sum(range(1234))
    assert rows[0]["start_time"] == now - timedelta(minutes=600)
    assert _cursor(engine).high_water == now


def test_pending_run_is_updated_when_it_finishes(fake, syncer, engine, now):
    run = fake.add_run(PROJECT, start_time=now - timedelta(minutes=5), prompt_tokens=None)
    assert syncer(now).ok
    (row,) = _runs(engine)
    assert row["end_time"] is None and row["status"] == "pending"
    fake.finish_run(run["id"], end_time=now + timedelta(minutes=1), prompt_tokens=30, completion_tokens=12)
    later = now + timedelta(minutes=15)
    result = syncer(later)
    assert result.ok and result.updated == 1 and result.inserted == 0
    (row,) = _runs(engine)
    assert row["status"] == "success" and row["end_time"] == now + timedelta(minutes=1)
    assert (row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]) == (30, 12, 42)


def test_pending_run_older_than_the_window_is_refetched_by_id(fake, syncer, engine, now):
    """Regression: a run longer than the look-back stayed pending forever in our copy."""
    run = fake.add_run(PROJECT, start_time=now - timedelta(hours=1))
    assert syncer(now).ok
    assert syncer(now + timedelta(hours=3)).ok  # cursor at now + 3h, the run still pending
    fake.finish_run(run["id"], end_time=now + timedelta(hours=3), prompt_tokens=5, completion_tokens=5)
    result = syncer(now + timedelta(hours=4))  # window starts at now + 1h: the run is outside it
    assert result.ok and result.pending_refetched == 1
    assert any(b.get("id") == [run["id"]] for b in fake.query_bodies)
    (row,) = _runs(engine)
    assert row["status"] == "success" and row["total_tokens"] == 10
    assert syncer(now + timedelta(hours=5)).pending_refetched == 0  # finished: no longer re-read


def test_late_child_grows_its_roots_totals(fake, syncer, engine, now):
    root = fake.add_run(PROJECT, start_time=now - timedelta(minutes=30), end_time=now - timedelta(minutes=20),
                        run_type="chain", name="agent-step", metadata={"agent": "planner"})
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=29), end_time=now - timedelta(minutes=28),
                 parent=root, prompt_tokens=100, completion_tokens=10, cost=0.01)
    assert syncer(now).ok
    assert _runs(engine, "run_id = :r", r=root["id"])[0]["total_tokens"] == 110
    # a second LLM call of the same trace reaches LangSmith only now (batched, delayed)
    late = fake.add_run(PROJECT, start_time=now - timedelta(minutes=25), end_time=now - timedelta(minutes=24),
                        parent=root, prompt_tokens=200, completion_tokens=20, cost=0.02)
    result = syncer(now + timedelta(minutes=15))
    assert result.ok and result.inserted == 1 and result.updated == 1
    root_row = _runs(engine, "run_id = :r", r=root["id"])[0]
    assert root_row["total_tokens"] == 330 and float(root_row["total_cost"]) == 0.03
    child = _runs(engine, "run_id = :r", r=late["id"])[0]
    assert child["agent_name"] == "planner"  # inherited from the trace root


def test_older_version_never_overwrites_a_newer_one(engine, now):
    """The precedence rule in SQL: finished > pending, then later end time, then larger totals."""
    base = {"run_id": "00000000-0000-4000-8000-00000000000a", "trace_id": "00000000-0000-4000-8000-00000000000a",
            "parent_run_id": None, "project": PROJECT, "name": "x", "run_type": "chain", "model": None,
            "prompt_tokens": None, "completion_tokens": None, "total_cost": None, "error": None, "tags": [],
            "extra": {}, "agent_name": None, "project_agent": None, "start_time": now.isoformat()}
    finished = {**base, "status": "success", "end_time": (now + timedelta(seconds=9)).isoformat(), "total_tokens": 50, "content_hash": "b"}
    pending = {**base, "status": "pending", "end_time": None, "total_tokens": None, "content_hash": "a"}
    smaller = {**finished, "total_tokens": 40, "content_hash": "c"}
    larger = {**finished, "total_tokens": 60, "content_hash": "d"}
    with engine.begin() as conn:
        assert store.upsert_page(conn, [finished]) == (1, 0)
        assert store.upsert_page(conn, [pending]) == (0, 0)   # a stale pending read loses
        assert store.upsert_page(conn, [smaller]) == (0, 0)   # smaller totals lose
        assert store.upsert_page(conn, [larger]) == (0, 1)    # larger totals win
        assert store.upsert_page(conn, [larger, smaller]) == (0, 0)  # duplicates in a page: newest kept
        row = conn.execute(sa.text("SELECT status, total_tokens FROM fleet.llm_runs")).one()
    assert tuple(row) == ("success", 60)


def test_second_sync_of_unchanged_window_writes_nothing(fake, syncer, engine, now):
    for i in range(150):
        fake.add_run(PROJECT, start_time=now - timedelta(minutes=90, seconds=-i), end_time=now - timedelta(minutes=80),
                     prompt_tokens=3, completion_tokens=4, metadata={"agent": "writer"})
    assert syncer(now).inserted == 150
    with engine.begin() as conn:
        before = conn.execute(sa.text("SELECT run_id, xmin::text, fetched_at FROM fleet.llm_runs ORDER BY run_id")).all()
    window = (now - timedelta(hours=3), now)
    for result in (syncer(now + timedelta(minutes=15)), syncer(now, window=window)):
        assert result.ok and result.runs_fetched == 150
        assert (result.inserted, result.updated, result.unchanged) == (0, 0, 150)
    with engine.begin() as conn:
        after = conn.execute(sa.text("SELECT run_id, xmin::text, fetched_at FROM fleet.llm_runs ORDER BY run_id")).all()
    assert before == after  # no tuple rewritten: same xmin


def test_rate_limit_with_retry_after_then_success(fake, syncer, now):
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=3), end_time=now - timedelta(minutes=2))
    fake.fail("POST", "/runs/query", 429, times=1, headers={"Retry-After": "1"})
    began = time.monotonic()
    result = syncer(now)
    assert result.ok and result.inserted == 1
    assert time.monotonic() - began >= 1.0  # Retry-After honoured
    assert syncer.retry_counts == {"rate_limited": 1}
    # four 6-hour slices of the first day; the first query was answered 429, then retried
    assert [s for m, p, s in fake.requests if p == "/runs/query"] == [429, 200, 200, 200, 200]


def test_persistent_server_errors_fail_cleanly_cursor_unchanged(fake, syncer, engine, now):
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=10), end_time=now - timedelta(minutes=9))
    assert syncer(now).ok
    before = _cursor(engine)
    fake.add_run(PROJECT, start_time=now + timedelta(minutes=1), end_time=now + timedelta(minutes=2))
    fake.fail("POST", "/runs/query", 500, times=100)
    result = syncer(now + timedelta(minutes=15), max_retries=2)
    assert not result.ok
    assert result.error == (f"LangSmith sync of project {PROJECT!r}: LangSmith server error (HTTP 500) after all retries")
    assert syncer.retry_counts == {"server_error": 2}
    assert _cursor(engine).high_water == before.high_water == now
    assert len(_runs(engine)) == 1
    with engine.begin() as conn:
        alert = conn.execute(sa.text("SELECT kind, subject, message FROM fleet.alerts WHERE resolved_at IS NULL")).one()
    assert alert.kind == "sync_failed" and PROJECT in alert.subject and "HTTP 500" in alert.message
    fake.faults.clear()
    assert syncer(now + timedelta(minutes=30)).ok
    with engine.begin() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM fleet.alerts WHERE resolved_at IS NULL")).scalar() == 0


def test_malformed_page_rolls_back_the_slice(fake, syncer, engine, settings, now):
    """Regression: rows of the pages read before a bad page must not commit without the cursor."""
    from dataclasses import replace

    for i in range(250):
        fake.add_run(PROJECT, start_time=now - timedelta(minutes=50, seconds=-i), end_time=now)
    one_slice = replace(settings, slice_length=timedelta(days=2))
    fake.fail("POST", "/runs/query", 200, times=1, skip=1, body=b'{"runs": [{"id": "not-a-run"}], "cursors": {}}')
    result = syncer(now, settings=one_slice)  # page 1 (100 runs) is fine, page 2 is not
    assert not result.ok and "malformed reply from LangSmith" in result.error
    assert _runs(engine) == [] and _cursor(engine).high_water is None
    fake.fail("POST", "/runs/query", 200, times=1, body=b"<html>gateway</html>")
    assert "malformed reply" in syncer(now).error
    assert syncer(now).inserted == 250


def test_attribution_by_metadata_tag_root_and_project_mapping(fake, syncer, engine, settings, now):
    from dataclasses import replace

    from agents_pipeline.core import registry  # noqa: F401  (the agent registry lives in SQL)

    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO fleet.agents (name) VALUES ('writer')"))
    t = now - timedelta(minutes=20)
    a = fake.add_run(PROJECT, start_time=t, end_time=now, metadata={"agents_pipeline_agent": "writer"})
    b = fake.add_run(PROJECT, start_time=t, end_time=now, tags=["x", "agent:reviewer"])
    c = fake.add_run(PROJECT, start_time=t, end_time=now)
    result = syncer(now, settings=replace(settings, project_agents={PROJECT: "fallback-agent"}))
    assert result.ok
    by_id = {str(r["run_id"]): r for r in _runs(engine)}
    assert by_id[a["id"]]["agent_name"] == "writer" and by_id[a["id"]]["agent_id"] is not None
    assert by_id[b["id"]]["agent_name"] == "reviewer" and by_id[b["id"]]["agent_id"] is None
    assert by_id[c["id"]]["agent_name"] == "fallback-agent"


def test_project_unknown_to_langsmith_reads_nothing_and_keeps_no_cursor(fake, syncer, engine, now):
    """A configured project nobody has traced into yet is not a failure; the freshness check flags it."""
    result = syncer(now, project="no-such-project")
    assert result.ok and result.missing and result.runs_fetched == 0
    with engine.begin() as conn:
        assert store.read_cursor(conn, "no-such-project").high_water is None


def test_backfill_reads_a_fixed_range_without_moving_the_cursor(fake, syncer, engine, now):
    for day in range(3):
        fake.add_run(PROJECT, start_time=now - timedelta(days=5 - day), end_time=now - timedelta(days=5 - day))
    result = syncer(now, window=(now - timedelta(days=6), now - timedelta(days=3, hours=12)))
    assert result.ok and result.inserted == 2 and result.slices == 10  # 2.5 days in 6-hour slices
    assert _cursor(engine).high_water is None
