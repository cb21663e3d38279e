"""The push: conversations recorded through SharedState reach the local LangSmith exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from agents_pipeline.core.registry import register_agent
from agents_pipeline.defs.langsmith.client import Redactor, close_client, make_client
from agents_pipeline.defs.langsmith.push import push_conversations

PUSH_PROJECT = "agents-pipeline"


def _push(fake, engine, max_retries: int = 1):
    errors: list[BaseException] = []
    client, _ = make_client(api_key=fake.api_key, endpoint=fake.url, max_retries=max_retries,
                            backoff_factor=0.01, on_ingest_error=errors.append)
    try:
        return push_conversations(engine, client, errors, PUSH_PROJECT, redact=Redactor(fake.api_key))
    finally:
        close_client(client)


def _conversations(engine):
    with engine.begin() as conn:
        return conn.execute(sa.text("SELECT run_id::text AS run_id, langsmith_sent_at, push_attempts, push_error "
                                    "FROM fleet.llm_conversations ORDER BY conversation_pk")).mappings().all()


def test_conversation_is_pushed_exactly_once(fake, engine, database, state):
    register_agent(database, "writer")
    created = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    run_id = state.record_conversation("What is 2+2?", "4", model="gpt-4o-mini", prompt_tokens=7,
                                       completion_tokens=1, cost=0.0002, latency_ms=850, agent="writer",
                                       conversation_id="c-1", created_at=created)
    state.record_conversation("What is 2+2?", "4", model="gpt-4o-mini", agent="writer",
                              conversation_id="c-1", created_at=created)  # a retried record: same run id
    first = _push(fake, engine)
    assert (first.sent, first.failed, first.unsent_remaining) == (1, 0, 0)
    assert fake.posted[str(run_id)] == 1 and fake.count("POST", "/runs/multipart") == 1
    stored = fake.runs[str(run_id)]
    assert stored["session_id"] == fake.add_project(PUSH_PROJECT)
    assert stored["extra"]["metadata"]["agents_pipeline_agent"] == "writer"
    assert (stored["prompt_tokens"], stored["completion_tokens"], stored["total_cost"]) == (7, 1, 0.0002)
    assert stored["start_time"] == "2026-11-27T09:59:59.150000"  # created_at minus the latency, in UTC
    assert stored["inputs"] == {"prompt": "What is 2+2?"} and stored["outputs"]["response"] == "4"
    (row,) = _conversations(engine)
    assert row["langsmith_sent_at"] is not None and row["push_attempts"] == 1
    second = _push(fake, engine)
    assert (second.sent, second.batches) == (0, 0)
    assert fake.posted[str(run_id)] == 1 and fake.duplicate_posts == 0 and fake.count("POST", "/runs/multipart") == 1


def test_conversation_with_a_langsmith_run_id_is_never_pushed(fake, engine, database, state):
    """Conversations the SQLite migration imported with their LangSmith run id arrive marked sent."""
    register_agent(database, "writer")
    state.record_conversation("imported", "yes", agent="writer", run_id="11111111-1111-4111-8111-111111111111")
    state.record_conversation("pulled back", "yes", agent="writer", run_id="22222222-2222-4222-8222-222222222222")
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE fleet.llm_conversations SET langsmith_sent_at = now() - interval '1 day' "
                             "WHERE run_id = '11111111-1111-4111-8111-111111111111'"))
        conn.execute(sa.text("INSERT INTO fleet.llm_runs (run_id, project, run_type) "
                             "VALUES ('22222222-2222-4222-8222-222222222222', 'p', 'llm')"))
    result = _push(fake, engine)
    assert (result.sent, result.already_in_langsmith, result.batches) == (0, 1, 0)
    assert fake.count("POST", "/runs/multipart") == 0 and not fake.posted
    assert all(r["langsmith_sent_at"] is not None for r in _conversations(engine))


def test_swallowed_ingest_failure_is_caught_and_retried_later(fake, engine, database, state):
    """Regression: multipart_ingest logs a 5xx and returns; the conversation must stay unsent."""
    register_agent(database, "writer")
    run_id = state.record_conversation("hello", "hi", agent="writer")
    fake.fail("POST", "/runs/multipart", 503, times=1000)
    failed = _push(fake, engine)
    assert (failed.sent, failed.failed, failed.unsent_remaining) == (0, 1, 1)
    assert "HTTP 503" in failed.error and fake.api_key not in failed.error
    (row,) = _conversations(engine)
    assert row["langsmith_sent_at"] is None and row["push_attempts"] == 1 and "HTTP 503" in row["push_error"]
    assert not fake.posted
    fake.faults.clear()
    ok = _push(fake, engine)
    assert (ok.sent, ok.failed) == (1, 0) and fake.posted[str(run_id)] == 1
    (row,) = _conversations(engine)
    assert row["langsmith_sent_at"] is not None and row["push_error"] is None and row["push_attempts"] == 2


def test_refused_batch_is_sent_one_by_one(fake, engine, database, state):
    """A 4xx on the batch falls back to single POST /runs so one bad record holds back nothing else."""
    register_agent(database, "writer")
    t = datetime.now(UTC) - timedelta(minutes=5)
    ids = [state.record_conversation(f"q{i}", f"a{i}", agent="writer", created_at=t + timedelta(seconds=i)) for i in range(3)]
    fake.fail("POST", "/runs/multipart", 422, times=1)
    fake.fail("POST", "/runs", 422, times=1, skip=1)  # the second single post is refused too
    result = _push(fake, engine)
    assert (result.sent, result.failed) == (2, 1)
    assert fake.posted[str(ids[0])] == 1 and fake.posted[str(ids[2])] == 1 and str(ids[1]) not in fake.posted
    sent = {r["run_id"]: r for r in _conversations(engine)}
    assert sent[str(ids[1])]["langsmith_sent_at"] is None and "HTTP 422" in sent[str(ids[1])]["push_error"]
