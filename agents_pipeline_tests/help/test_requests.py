"""The request queue: racing workers, leases, attempts, and the requests agents submit."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from agents_pipeline.core.connection import Database
from agents_pipeline.core.errors import NotFoundError, ValidationError
from agents_pipeline.defs.help import request_store, service
from agents_pipeline_tests.help.conftest import add_agent, run_sql


def test_two_workers_racing_answer_each_request_once(db_url, database, knowledge):
    """Regression guard for double answers: two workers drain the same 40 requests at once."""
    add_agent(database, "demo", "down")
    ids = [request_store.submit(database, f"why is demo down? ({i})") for i in range(40)]
    reports = {}
    start = threading.Barrier(2)

    def worker(name: str) -> None:
        db = Database(db_url, maxconn=2, retry_window=5)
        try:
            start.wait()
            reports[name] = service.drain(db, name, batch=2, budget_s=60, max_requests=100)
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in ("w1", "w2")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    answered = reports["w1"].answered + reports["w2"].answered
    assert sorted(answered) == ids                                   # each exactly once
    assert reports["w1"].answered and reports["w2"].answered         # both really worked
    rows = run_sql(database, "SELECT status, claimed_by, attempts FROM fleet.help_requests")
    assert Counter(r[0] for r in rows) == {"answered": 40}
    assert all(r[2] == 1 for r in rows)
    per_worker = Counter(r[1] for r in rows)
    assert per_worker == {"w1": len(reports["w1"].answered), "w2": len(reports["w2"].answered)}
    conversations = run_sql(database, "SELECT count(*), count(DISTINCT run_id) FROM fleet.llm_conversations")[0]
    assert tuple(conversations) == (40, 40)


def test_expired_lease_is_taken_over_and_the_old_worker_stores_nothing(database, knowledge):
    rid = request_store.submit(database, "what does the grace period do?")
    [mine] = request_store.claim(database, "slow-worker", lease_s=60)
    assert request_store.claim(database, "other") == []              # leased: not offered
    run_sql(database, "UPDATE fleet.help_requests SET lease_until = now() - interval '1 second'")
    [theirs] = request_store.claim(database, "other")
    assert mine.request_id == theirs.request_id == rid and theirs.attempts == 2
    from agents_pipeline.defs.help.answer import answer

    result = answer(database, mine.question)
    assert request_store.complete(database, rid, "slow-worker", result) is False
    assert request_store.complete(database, rid, "other", result) is True
    assert run_sql(database, "SELECT count(*) FROM fleet.llm_conversations")[0][0] == 1


def test_request_that_keeps_dying_ends_failed_and_imported_are_never_claimed(database):
    rid = request_store.submit(database, "crashes the worker")
    run_sql(database, "INSERT INTO fleet.help_requests (question, status) VALUES ('old one', 'imported')")
    for attempt in range(request_store.MAX_ATTEMPTS):
        [req] = request_store.claim(database, f"w{attempt}")
        assert req.attempts == attempt + 1
        run_sql(database, "UPDATE fleet.help_requests SET lease_until = now() - interval '1 s' WHERE request_id = %s",
                (rid,))
    assert request_store.claim(database, "w-last") == []
    row = request_store.get(database, rid)
    assert row["status"] == "failed" and "gave up after 3 attempts" in row["error"]
    assert request_store.counts(database) == {"pending": 0, "claimed": 0, "answered": 0, "failed": 1, "imported": 1}


def test_released_requests_do_not_count_an_attempt(database):
    rid = request_store.submit(database, "q")
    request_store.claim(database, "w")
    assert request_store.release(database, [rid], "w") == 1
    row = request_store.get(database, rid)
    assert (row["status"], row["attempts"], row["claimed_by"]) == ("pending", 0, None)


def test_agent_submitted_request_is_answered_for_that_agent(state, database, knowledge):
    add_agent(database, "worker-7", "late", since="40 seconds")
    rid = state.submit_help_request("what should I do now?", agent="worker-7")
    report = service.drain(database, "w")
    assert report.answered == [rid]
    got = state.get_help_request(rid, agent="worker-7")
    assert got["status"] == "answered" and "worker-7 is LATE since" in got["answer"]
    assert any(s.get("table") == "fleet.agents" for s in got["sources"])


def test_bad_input_is_refused_and_stores_nothing(database):
    with pytest.raises(ValidationError, match="question is empty"):
        request_store.submit(database, "   ")
    with pytest.raises(ValidationError, match="NUL"):
        request_store.submit(database, "why\x00")
    with pytest.raises(NotFoundError, match="unknown agent 'ghost'"):
        service.ask(database, "why?", agent="ghost")
    assert run_sql(database, "SELECT count(*) FROM fleet.help_requests")[0][0] == 0
