"""The agent calls over real HTTP with a bearer token: key-value with ETag / If-Match, messages,
tasks, remote metrics, conversations and help requests, each checked against what the database
stored, and each refused the way the database path refuses it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from agents_pipeline.core import registry
from agents_pipeline_tests.api.conftest import query
from agents_pipeline_tests.api.server import ApiServer


def call(server: ApiServer, method: str, path: str, doc: Any = None, token: str | None = None,
         headers: dict[str, str] | None = None, raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
    head = {"Content-Type": "application/json", **(headers or {})}
    if token is not None:
        head["Authorization"] = f"Bearer {token}"
    body = raw if raw is not None else None if doc is None else json.dumps(doc).encode()
    status, got, text = server.request(method, path, body, head)
    return status, got, json.loads(text) if text else None


def test_key_value_versions_are_etags_and_if_match_is_a_compare_and_set(api_server, new_agent) -> None:
    reg = new_agent("kv")
    url = f"/v1/agents/{reg.name}/kv?key={reg.name}/state"
    assert call(api_server, "GET", url, token=reg.token)[0] == 404
    status, head, doc = call(api_server, "PUT", url, {"n": 1}, reg.token, {"If-None-Match": "*"})
    assert (status, head["etag"], doc) == (200, '"1"', {"key": f"{reg.name}/state", "version": 1})
    status, head, doc = call(api_server, "GET", url, token=reg.token)
    assert status == 200 and head["etag"] == '"1"' and doc["value"] == {"n": 1} and doc["updated_by"] == reg.name
    assert call(api_server, "GET", url, token=reg.token, headers={"If-None-Match": '"1"'})[0] == 304
    # a compare-and-set that wins, then one that lost the race: 412 with the current version
    status, head, doc = call(api_server, "PUT", url, {"n": 2}, reg.token, {"If-Match": '"1"'})
    assert (status, head["etag"], doc["version"]) == (200, '"2"', 2)
    status, head, doc = call(api_server, "PUT", url, {"n": 3}, reg.token, {"If-Match": '"1"'})
    assert (status, head["etag"], doc["current_version"]) == (412, '"2"', 2) and "not 1" in doc["error"]
    assert call(api_server, "PUT", url, {"n": 3}, reg.token, {"If-None-Match": "*"})[0] == 412
    assert call(api_server, "PUT", url, {"n": 3}, reg.token, {"If-Match": "2"})[2] == {
        "error": 'If-Match must be one version as an ETag, e.g. If-Match: "3"'}
    # a retried write with the same Idempotency-Key writes once
    key = str(uuid.uuid4())
    first = call(api_server, "PUT", url, {"n": 4}, reg.token, {"If-Match": '"2"', "Idempotency-Key": key})
    again = call(api_server, "PUT", url, {"n": 4}, reg.token, {"If-Match": '"2"', "Idempotency-Key": key})
    assert first[0] == again[0] == 200 and first[2]["version"] == again[2]["version"] == 3
    assert call(api_server, "GET", url, token=reg.token)[2]["value"] == {"n": 4}
    # null cannot be stored; another agent's namespace is forbidden (after authentication)
    assert call(api_server, "PUT", url, raw=b"null", token=reg.token)[0] == 400
    status, _, doc = call(api_server, "GET", "/v1/agents/" + reg.name + "/kv?key=someone-else/x", token=reg.token)
    assert status == 403 and "may not read key" in doc["error"]


def test_messages_are_sent_claimed_and_acknowledged(api_server, operator_db, new_agent) -> None:
    alice, bob = new_agent("alice"), new_agent("bob")
    key = str(uuid.uuid4())
    sent = [call(api_server, "POST", f"/v1/agents/{alice.name}/messages",
                 {"to": bob.name, "type": "job", "payload": {"id": 7}}, alice.token, {"Idempotency-Key": key})
            for _ in range(2)]
    assert [s[0] for s in sent] == [201, 201] and sent[0][2] == sent[1][2]       # the retry queued nothing
    message_id = sent[0][2]["message_id"]
    status, _, doc = call(api_server, "POST", f"/v1/agents/{bob.name}/messages/claim", {"limit": 5, "lease_s": 30},
                          bob.token)
    assert status == 200 and [(m["message_id"], m["from"], m["type"], m["payload"]) for m in doc["messages"]] == [
        (message_id, alice.name, "job", {"id": 7})]
    ack = f"/v1/agents/{bob.name}/messages/{message_id}/ack"
    assert call(api_server, "POST", ack, token=bob.token)[:3:2] == (200, {"acknowledged": message_id})
    assert call(api_server, "POST", ack, token=bob.token)[0] == 200           # acknowledging again is harmless
    status, _, doc = call(api_server, "POST", f"/v1/agents/{alice.name}/messages/{message_id}/ack", token=alice.token)
    assert status == 404 and doc["error"] == f"message {message_id} is not claimed by {alice.name!r}"
    assert query(operator_db, "SELECT acked_at IS NOT NULL FROM fleet.agent_messages WHERE message_id = %s",
                 (message_id,)) == [(True,)]
    assert call(api_server, "POST", f"/v1/agents/{alice.name}/messages", {"to": bob.name}, alice.token)[2] == {
        "error": "missing fields: type"}


def test_tasks_are_submitted_claimed_and_finished_with_their_attempt(api_server, operator_db, new_agent) -> None:
    boss, worker = new_agent("boss"), new_agent("worker")
    kind = f"k{uuid.uuid4().hex[:8]}"
    submit = {"kind": kind, "payload": {"n": 1}, "dedupe_key": "once"}
    first = call(api_server, "POST", f"/v1/agents/{boss.name}/tasks", submit, boss.token)
    again = call(api_server, "POST", f"/v1/agents/{boss.name}/tasks", submit, boss.token)
    assert first[0] == 201 and first[2] == again[2]
    task_id = first[2]["task_id"]
    second = call(api_server, "POST", f"/v1/agents/{boss.name}/tasks", {"kind": kind}, boss.token)[2]["task_id"]
    status, _, doc = call(api_server, "POST", f"/v1/agents/{worker.name}/tasks/claim", {"n": 2, "lease_s": 30},
                          worker.token)
    claimed = {t["task_id"]: t for t in doc["tasks"]}
    assert status == 200 and set(claimed) >= {task_id, second} and claimed[task_id]["payload"] == {"n": 1}
    base = f"/v1/agents/{worker.name}/tasks"
    attempt = claimed[task_id]["attempt_id"]
    status, _, doc = call(api_server, "POST", f"{base}/{task_id}/extend", {"attempt_id": attempt, "lease_s": 120},
                          worker.token)
    assert status == 200 and doc["lease_until"]
    assert call(api_server, "POST", f"{base}/{task_id}/complete", {"attempt_id": attempt, "result": {"ok": True}},
                worker.token)[:3:2] == (200, {"task_id": task_id, "state": "done"})
    status, _, doc = call(api_server, "POST", f"{base}/{task_id}/complete", {"attempt_id": str(uuid.uuid4())},
                          worker.token)
    assert status == 409 and "no longer held" in doc["error"]
    status, _, doc = call(api_server, "POST", f"{base}/{second}/fail",
                          {"attempt_id": claimed[second]["attempt_id"], "error": "boom", "permanent": True},
                          worker.token)
    assert (status, doc["state"]) == (200, "failed")
    status, _, doc = call(api_server, "GET", f"/v1/agents/{boss.name}/tasks/{task_id}", token=boss.token)
    assert status == 200 and (doc["state"], doc["result"], doc["claimed_by"]) == ("done", {"ok": True}, worker.name)
    assert query(operator_db, "SELECT state, last_error FROM fleet.tasks WHERE task_id = %s", (second,)) == [
        ("failed", "boom")]
    assert call(api_server, "GET", f"/v1/agents/{worker.name}/tasks/999999999", token=worker.token)[0] == 404


def test_a_batch_of_tasks_is_queued_in_order_all_or_none(api_server, operator_db, new_agent) -> None:
    boss = new_agent("boss")
    kind = f"k{uuid.uuid4().hex[:8]}"
    url = f"/v1/agents/{boss.name}/tasks/batch"
    body = {"kind": kind, "payloads": [{"n": 1}, {"n": 2}, {"n": 3}], "dedupe_keys": ["a", None, "a"], "priority": 2}
    status, _, doc = call(api_server, "POST", url, body, boss.token)
    assert status == 201 and len(doc["task_ids"]) == 3 and doc["task_ids"][2] == doc["task_ids"][0]
    assert query(operator_db, "SELECT task_id, payload, priority FROM fleet.tasks WHERE kind = %s ORDER BY task_id",
                 (kind,)) == [(doc["task_ids"][0], {"n": 1}, 2), (doc["task_ids"][1], {"n": 2}, 2)]
    status, _, doc = call(api_server, "POST", url, {"kind": kind, "payloads": [{"n": 4}] * 1001}, boss.token)
    assert status == 400 and "1 to 1000 payloads" in doc["error"]
    status, _, doc = call(api_server, "POST", url, {"kind": kind, "payloads": {"n": 5}}, boss.token)
    assert status == 400 and "payloads must be a list" in doc["error"]
    assert query(operator_db, "SELECT count(*) FROM fleet.tasks WHERE kind = %s", (kind,)) == [(2,)]


def test_a_claimed_task_can_be_released(api_server, new_agent) -> None:
    reg = new_agent("releaser")
    kind = f"r{uuid.uuid4().hex[:8]}"
    base = f"/v1/agents/{reg.name}/tasks"
    task_id = call(api_server, "POST", base, {"kind": kind}, reg.token)[2]["task_id"]
    tasks = call(api_server, "POST", f"{base}/claim", {"n": 10}, reg.token)[2]["tasks"]
    attempt = next(t["attempt_id"] for t in tasks if t["task_id"] == task_id)
    assert call(api_server, "POST", f"{base}/{task_id}/release", {"attempt_id": attempt}, reg.token)[2] == {
        "task_id": task_id, "state": "ready"}
    assert call(api_server, "GET", f"{base}/{task_id}", token=reg.token)[2]["state"] == "ready"


def test_remote_metrics_conversations_and_help_are_stored(api_server, operator_db, new_agent) -> None:
    reg = new_agent("remote")
    status, _, doc = call(api_server, "POST", f"/v1/agents/{reg.name}/metrics",
                          {"host": "edge-7", "metrics": {"cpu_percent": 12.5, "rss_mb": 300}}, reg.token)
    assert (status, doc) == (200, {"stored": 2})
    rows = query(operator_db, """SELECT s.host, s.metric, s.value FROM fleet.perf_samples s JOIN fleet.agents a USING (agent_id)
                                 WHERE a.name = %s ORDER BY metric""", (reg.name,))
    assert rows == [("edge-7", "cpu_percent", 12.5), ("edge-7", "rss_mb", 300.0)]
    assert call(api_server, "POST", f"/v1/agents/{reg.name}/metrics", {"metrics": {"x": 1}}, reg.token)[2] == {
        "error": "missing fields: host"}

    convo = {"prompt": "2+2?", "response": "4", "model": "m", "prompt_tokens": 3, "completion_tokens": 1,
             "created_at": "2026-01-02T03:04:05+00:00"}
    runs = [call(api_server, "POST", f"/v1/agents/{reg.name}/conversations", convo, reg.token) for _ in range(2)]
    assert runs[0][0] == runs[1][0] == 201 and runs[0][2] == runs[1][2]
    assert query(operator_db, """SELECT count(*), min(response) FROM fleet.llm_conversations c
                                 JOIN fleet.agents a USING (agent_id) WHERE a.name = %s""", (reg.name,)) == [(1, "4")]

    status, head, doc = call(api_server, "POST", f"/v1/agents/{reg.name}/help-requests",
                             {"question": "why am I late?", "context": {"lag_s": 40}}, reg.token)
    assert status == 201 and head["location"] == f"/v1/agents/{reg.name}/help-requests/{doc['request_id']}"
    status, _, polled = call(api_server, "GET", head["location"], token=reg.token)
    assert status == 200 and (polled["status"], polled["answer"]) == ("pending", None)
    query(operator_db, "UPDATE fleet.help_requests SET status = 'answered', answer = 'clock skew', "
          "answered_at = now() WHERE request_id = %s RETURNING 1", (doc["request_id"],))
    status, _, polled = call(api_server, "GET", head["location"], token=reg.token)
    assert (status, polled["status"], polled["answer"]) == (200, "answered", "clock skew")


def test_every_call_answers_an_unknown_agent_and_a_wrong_token_alike(api_server, new_agent) -> None:
    """Guards against an answer that tells a caller which agents exist: a wrong token for a real
    agent and any token for a name that does not exist get byte-identical 401s on every call."""
    real, other = new_agent("real"), new_agent("other")
    paths = [("POST", "/metrics", {"host": "h", "metrics": {"a": 1}}), ("POST", "/messages", {"type": "t"}),
             ("POST", "/messages/claim", {}), ("POST", "/messages/1/ack", None), ("GET", "/kv?key=k", None),
             ("PUT", "/kv?key=k", {"v": 1}), ("POST", "/help-requests", {"question": "q"}),
             ("GET", "/help-requests/1", None), ("POST", "/tasks", {"kind": "k"}), ("POST", "/tasks/claim", {}),
             ("GET", "/tasks/1", None), ("POST", "/conversations", {"prompt": "p"}),
             ("POST", "/tasks/1/complete", {"attempt_id": str(uuid.uuid4())})]
    for method, suffix, doc in paths:
        answers = [call(api_server, method, f"/v1/agents/{real.name}{suffix}", doc, other.token),
                   call(api_server, method, f"/v1/agents/no-such-{uuid.uuid4().hex}{suffix}", doc, real.token),
                   call(api_server, method, f"/v1/agents/{real.name}{suffix}", doc, None)]
        assert {(a[0], json.dumps(a[2]), a[1].get("www-authenticate")) for a in answers} == {
            (401, json.dumps({"error": "unauthorized: unknown agent or token refused"}), 'Bearer realm="agents"')
        }, (method, suffix, answers)


def test_calls_meet_the_rate_limits_and_the_body_cap(api_server, operator_db, new_agent) -> None:
    reg = new_agent("limited")
    query(operator_db, """INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst)
                          VALUES (%s, 'kv_writes', 0.1, 1) RETURNING 1""", (reg.agent_id,))
    url = f"/v1/agents/{reg.name}/kv?key={reg.name}/x"
    assert call(api_server, "PUT", url, {"v": 1}, reg.token)[0] == 200
    status, head, doc = call(api_server, "PUT", url, {"v": 2}, reg.token)
    assert status == 429 and 1 <= int(head["retry-after"]) <= 10 and "rate limit" in doc["error"]
    status, _, doc = call(api_server, "PUT", url, raw=b'"' + b"x" * (2 * 1024 * 1024) + b'"', token=reg.token)
    assert status == 413 and doc == {"error": "request body larger than 2097152 bytes"}
    status, _, doc = call(api_server, "POST", f"/v1/agents/{reg.name}/tasks", raw=b"{not json", token=reg.token)
    assert status == 400 and doc["error"].startswith("body is not JSON")


def test_the_python_api_and_http_share_one_store(api_server, api_db, new_agent) -> None:
    """What an agent writes over HTTP, another reads with SharedState, and the reverse."""
    from agents_pipeline.core.shared_state import SharedState

    reg: registry.Registration = new_agent("mixed")
    url = f"/v1/agents/{reg.name}/kv?key={reg.name}/both"
    assert call(api_server, "PUT", url, {"from": "http"}, reg.token)[0] == 200
    with SharedState(api_db, agent=reg.name, token=reg.token, maxconn=1) as state:
        kv = state.get(f"{reg.name}/both")
        assert kv is not None and (kv.value, kv.version) == ({"from": "http"}, 1)
        state.set(f"{reg.name}/both", {"from": "python"}, expected_version=1)
    assert call(api_server, "GET", url, token=reg.token)[1]["etag"] == '"2"'
