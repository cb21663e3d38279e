"""Bearer-token heartbeat batches: ``POST /v1/agents/<name>/heartbeats``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from agents_pipeline_tests.api.conftest import query


def path(name: str) -> str:
    return f"/v1/agents/{name}/heartbeats"


def test_a_batch_is_stored_in_order_with_its_fields(api_server, operator_db, new_agent) -> None:
    reg = new_agent("batcher")
    sent_at = (datetime.now(UTC) - timedelta(seconds=3)).replace(microsecond=0)
    status, _, doc = api_server.post_json(path(reg.name), {"heartbeats": [
        {"kind": "start", "message": "nightly run"},
        {"kind": "log", "message": "halfway", "payload": {"done": 50}},
        {"message": "finished", "payload": {"rows": 1200}, "sent_at": sent_at.isoformat()},
    ]}, reg.token)
    assert status == 200 and doc["stored"] == 3
    assert [set(r) for r in doc["results"]] == [{"received_at"}] * 3
    rows = query(operator_db, """SELECT h.kind, h.message, h.payload, h.sent_at FROM fleet.heartbeats h
                                 JOIN fleet.agents a USING (agent_id) WHERE a.name = %s""", (reg.name,))
    assert sorted(rows, key=lambda r: ["start", "log", "ok"].index(r[0])) == [
        ("start", "nightly run", None, None), ("log", "halfway", {"done": 50}, None),
        ("ok", "finished", {"rows": 1200}, sent_at)]
    last = query(operator_db, "SELECT last_kind, last_message, heartbeat_count FROM fleet.agents WHERE name = %s",
                 (reg.name,))
    assert last == [("ok", "finished", 2)]            # a log line is stored but is no signal


def test_an_item_over_the_cap_is_refused_alone(api_server, operator_db, new_agent) -> None:
    """The SQL path's rule: a message over the cap in bytes is refused for its item, naming the
    cap; the rest of the batch is stored."""
    reg = new_agent("capped")
    status, _, doc = api_server.post_json(path(reg.name), {"heartbeats": [
        {"message": "é" * 5000}, {"message": "fine"}]}, reg.token)
    assert status == 200 and doc["stored"] == 1
    assert doc["results"][0] == {"error": "message larger than 8192 bytes"}
    assert set(doc["results"][1]) == {"received_at"}


def test_bad_items_are_named(api_server, new_agent) -> None:
    reg = new_agent("sloppy")
    cases = [
        (b"not json", "body is not JSON"),
        (b'{"heartbeats": []}', 'body must be {"heartbeats": [ ... ]}'),
        (b'{"heartbeats": [{"kind": "maybe"}]}', "heartbeats[0].kind must be one of ok, start, fail, log"),
        (b'{"heartbeats": [{}, {"colour": 1}]}', "heartbeats[1] has unknown fields: colour"),
        (b'{"heartbeats": [{"sent_at": "yesterday"}]}', "heartbeats[0].sent_at is not an ISO 8601 time"),
        (b'{"heartbeats": [{"sent_at": "2025-01-01T00:00:00"}]}', "heartbeats[0].sent_at has no time zone"),
        (b'{"heartbeats": [{"message": "a\\u0000b"}]}', "heartbeats[0].message contains a NUL character"),
        (b'{"heartbeats": [{"payload": NaN}]}', "heartbeats[0].payload is not JSON-serialisable"),
    ]
    for body, expected in cases:
        status, _, raw = api_server.request("POST", path(reg.name), body,
                                            {"Authorization": f"Bearer {reg.token}"})
        assert status == 400 and expected in json.loads(raw)["error"], (body, raw)


def test_a_token_acts_for_its_own_agent_only(api_server, operator_db, new_agent) -> None:
    alpha, bravo = new_agent("alpha"), new_agent("bravo")
    status, _, _ = api_server.post_json(path(bravo.name), {"heartbeats": [{}]}, alpha.token)
    assert status == 401
    assert query(operator_db, "SELECT heartbeat_count FROM fleet.agents WHERE name = %s", (bravo.name,)) == [(0,)]
