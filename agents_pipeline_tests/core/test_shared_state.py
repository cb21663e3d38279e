"""SharedState against a real PostgreSQL: heartbeats, keys, messages, identity, bad input."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from agents_pipeline.core import registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import (
    AuthError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from agents_pipeline.core.shared_state import SharedState


def _count(url: str, sql: str, params: tuple = ()) -> int:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchone()[0]
    finally:
        conn.close()


def test_heartbeat_updates_registry_and_stores_row(state: SharedState, database: Database, db_url: str) -> None:
    registry.register_agent(database, "worker-1", period_s=10, grace_s=5)
    sent = datetime.now(UTC) - timedelta(seconds=30)  # agent clock 30 s behind
    received = state.heartbeat("worker-1", message="hello", payload={"q": 3}, sent_at=sent)
    agent = registry.list_agents(database)[0]
    assert agent["last_seen"] == received
    assert agent["last_message"] == "hello"
    assert agent["heartbeat_count"] == 1
    assert agent["clock_skew_s"] == pytest.approx(-30, abs=2)
    assert _count(db_url, "SELECT count(*) FROM fleet.heartbeats WHERE message = 'hello' AND payload->>'q' = '3'") == 1


def test_start_and_fail_signals(state: SharedState, database: Database) -> None:
    registry.register_agent(database, "job")
    state.start("job", message="nightly")
    row = registry.list_agents(database)[0]
    assert row["last_kind"] == "start"
    state.fail("job", message="boom")
    row = registry.list_agents(database)[0]
    assert (row["last_kind"], row["last_message"]) == ("fail", "boom")


def test_fifty_concurrent_threads_all_stored(db_url: str, database: Database) -> None:
    names = [f"agent-{i:02d}" for i in range(50)]
    for name in names:
        registry.register_agent(database, name)
    per_thread = 20
    with SharedState(db_url, maxconn=4) as shared:
        def beat(name: str) -> None:
            for _ in range(per_thread):
                shared.heartbeat(name)

        with ThreadPoolExecutor(50) as pool:
            list(pool.map(beat, names))
    assert _count(db_url, "SELECT count(*) FROM fleet.heartbeats") == 50 * per_thread
    assert _count(db_url, "SELECT count(DISTINCT heartbeat_count) FROM fleet.agents") == 1
    assert _count(db_url, "SELECT min(heartbeat_count) FROM fleet.agents") == per_thread


def test_batch_path_reports_each_item(state: SharedState, database: Database, db_url: str) -> None:
    registry.register_agent(database, "a")
    registry.register_agent(database, "b")
    results = state.heartbeat_many([{"agent": "a"}, {"agent": "ghost"}, {"agent": "b", "kind": "fail"}])
    assert isinstance(results[0], datetime) and isinstance(results[2], datetime)
    assert isinstance(results[1], NotFoundError) and "ghost" in str(results[1])
    assert _count(db_url, "SELECT count(*) FROM fleet.heartbeats") == 2


def test_compare_and_set_two_writers_lose_no_update(db_url: str) -> None:
    rounds = 100
    with SharedState(db_url) as shared:
        shared.set("counter", 0)

        def increment() -> None:
            for _ in range(rounds):
                while True:
                    current = shared.get("counter")
                    try:
                        shared.compare_and_set("counter", current.value + 1, current.version)
                        break
                    except ConflictError:
                        continue

        threads = [threading.Thread(target=increment) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = shared.get("counter")
    assert final.value == 2 * rounds
    assert final.version == 2 * rounds + 1


def test_kv_versions_and_conflicts(state: SharedState) -> None:
    assert state.get("missing") is None
    assert state.set("cfg", {"mode": "a"}, expected_version=0) == 1
    with pytest.raises(ConflictError) as info:
        state.set("cfg", {"mode": "b"}, expected_version=0)
    assert info.value.current_version == 1
    assert state.set("cfg", {"mode": "b"}) == 2
    kv = state.get("cfg")
    assert (kv.value, kv.version, kv.updated_by) == ({"mode": "b"}, 2, "postgres")


def test_message_claimed_by_exactly_one_of_two_consumers(state: SharedState, database: Database, db_url: str) -> None:
    for name in ("coordinator", "w1", "w2"):
        registry.register_agent(database, name)
    ids = {state.send_message(None, "task", {"n": i}, agent="coordinator") for i in range(40)}
    claimed: dict[str, list[int]] = {"w1": [], "w2": []}
    barrier = threading.Barrier(2)

    def consume(name: str) -> None:
        with SharedState(db_url) as own:
            barrier.wait()
            while batch := own.claim_messages(limit=3, agent=name):
                for message in batch:
                    claimed[name].append(message.message_id)
                    own.ack_message(message.message_id, agent=name)

    threads = [threading.Thread(target=consume, args=(n,)) for n in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    all_claimed = claimed["w1"] + claimed["w2"]
    assert sorted(all_claimed) == sorted(ids)
    assert len(set(all_claimed)) == len(all_claimed)
    assert _count(db_url, "SELECT count(*) FROM fleet.agent_messages WHERE acked_at IS NULL") == 0


def test_direct_message_only_to_its_recipient(state: SharedState, database: Database) -> None:
    for name in ("boss", "w1", "w2"):
        registry.register_agent(database, name)
    mid = state.send_message("w2", "hello", {"x": 1}, agent="boss")
    assert state.claim_messages(agent="w1") == []
    got = state.claim_messages(agent="w2")
    assert [(m.message_id, m.from_agent, m.payload) for m in got] == [(mid, "boss", {"x": 1})]
    with pytest.raises(NotFoundError):
        state.ack_message(mid, agent="w1")


def test_token_of_one_agent_refused_for_another(db_url: str, database: Database) -> None:
    alice = registry.register_agent(database, "alice")
    registry.register_agent(database, "bob")
    with SharedState(db_url, agent="alice", token=alice.token) as as_alice:
        as_alice.heartbeat()
        with pytest.raises(AuthError, match="bob"):
            as_alice.heartbeat("bob")
        with pytest.raises(AuthError):
            as_alice.send_message(None, "x", agent="bob")
    assert _count(db_url, "SELECT count(*) FROM fleet.heartbeats h JOIN fleet.agents a USING (agent_id) "
                          "WHERE a.name = 'bob'") == 0


def test_rotated_and_revoked_tokens(db_url: str, database: Database) -> None:
    reg = registry.register_agent(database, "rot")
    new = registry.rotate_token(database, "rot")
    with SharedState(db_url, agent="rot", token=reg.token) as old_state, pytest.raises(AuthError):
        old_state.heartbeat()
    with SharedState(db_url, agent="rot", token=new) as new_state:
        new_state.heartbeat()
        registry.revoke_token(database, "rot")
        with pytest.raises(AuthError):
            new_state.heartbeat()


def test_conversation_recorded_once(state: SharedState, database: Database, db_url: str) -> None:
    registry.register_agent(database, "llm")
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = state.record_conversation("hi", "hello", model="m", conversation_id="c1", created_at=at,
                                      prompt_tokens=3, completion_tokens=4, agent="llm")
    second = state.record_conversation("hi", "hello", model="m", conversation_id="c1", created_at=at,
                                       prompt_tokens=3, completion_tokens=4, agent="llm")
    assert first == second
    assert _count(db_url, "SELECT count(*) FROM fleet.llm_conversations WHERE total_tokens = 7") == 1


def test_remote_metrics_and_help_request(state: SharedState, database: Database, db_url: str) -> None:
    registry.register_agent(database, "remote", host="other-host")
    assert state.report_metrics({"cpu_percent": 12.5, "rss_bytes": 1e6}, host="other-host", agent="remote") == 2
    assert _count(db_url, "SELECT count(*) FROM fleet.perf_samples WHERE source = 'remote'") == 2
    rid = state.submit_help_request("why am I down?", {"k": 1}, agent="remote")
    assert state.get_help_request(rid, agent="remote")["status"] == "pending"


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda s: s.heartbeat("nobody"), NotFoundError, "unknown agent 'nobody'"),
        (lambda s: s.heartbeat("known", message="a\x00b"), ValidationError, "NUL"),
        (lambda s: s.heartbeat("known", message=b"\xff\xfe"), ValidationError, "not valid UTF-8"),
        (lambda s: s.heartbeat("known", message="bad \udcff surrogate"), ValidationError, "not valid UTF-8"),
        (lambda s: s.heartbeat("known", payload={"blob": "x" * 70_000}), ValidationError, "larger than"),
        (lambda s: s.heartbeat("known", payload={"v": float("nan")}), ValidationError, "JSON"),
        (lambda s: s.heartbeat("known", kind="maybe"), ValidationError, "kind"),
        (lambda s: s.set("k", "x" * (1024 * 1024 + 10)), ValidationError, "limit"),
        (lambda s: s.set("k", {"a": "\x00"}), ValidationError, "NUL"),
        (lambda s: s.send_message("nobody", "t", agent="known"), NotFoundError, "nobody"),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(state, database, db_url, call, error, match) -> None:
    registry.register_agent(database, "known")
    with pytest.raises(error, match=match):
        call(state)
    assert _count(db_url, "SELECT count(*) FROM fleet.heartbeats") == 0
    assert _count(db_url, "SELECT count(*) FROM fleet.kv_store") == 0
    assert _count(db_url, "SELECT count(*) FROM fleet.agent_messages") == 0
