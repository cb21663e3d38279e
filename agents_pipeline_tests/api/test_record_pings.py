"""fleet.record_pings and fleet.cut_message in SQL, without the server: the rules the HTTP ping
path relies on (signals to kinds, the cut, one answer for unknown and rotated keys)."""

from __future__ import annotations

import hashlib

import pytest

from agents_pipeline.core import registry
from agents_pipeline.core.validation import MAX_MESSAGE
from agents_pipeline_tests.api.conftest import query

PINGS = "SELECT ord, received_at IS NOT NULL, error FROM fleet.record_pings(%s::bytea[], %s, %s, %s::bigint[])"


def h(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def test_signals_map_to_kinds_and_exit_statuses_are_kept(database) -> None:
    reg = registry.register_agent(database, "mapper")
    signals = ["", "ok", "start", "log", "fail", "0", "1", "255", "256", "restart"]
    rows = query(database, PINGS, ([h(reg.ping_key)] * len(signals), signals, [None] * len(signals),
                                   [0] * len(signals)))
    assert [r[2] for r in rows] == [None] * 8 + ["invalid heartbeat kind '256'", "invalid heartbeat kind 'restart'"]
    stored = query(database, "SELECT kind, payload FROM fleet.heartbeats ORDER BY kind, payload::text")
    assert sorted(stored, key=str) == sorted([
        ("ok", None), ("ok", None), ("start", None), ("log", None), ("fail", None), ("ok", {"exit_status": 0}),
        ("fail", {"exit_status": 1}), ("fail", {"exit_status": 255})], key=str)


def test_unknown_and_rotated_keys_get_one_answer_and_lock_nothing(database) -> None:
    reg = registry.register_agent(database, "rotating")
    old = reg.ping_key
    new = query(database, "UPDATE fleet.agents SET ping_key = DEFAULT WHERE agent_id = %s RETURNING ping_key",
                (reg.agent_id,))[0][0]
    rows = query(database, PINGS, ([h(old), h("never-issued-key-xxxxxxxxxxxxxxxxxxxxxxx"), h(new)],
                                   ["", "", ""], [None] * 3, [0] * 3))
    assert rows == [(1, False, "ping key refused"), (2, False, "ping key refused"), (3, True, None)]


def test_every_agent_gets_a_distinct_url_safe_key_whatever_registers_it(database) -> None:
    query(database, "INSERT INTO fleet.agents (name) SELECT 'bulk-' || g FROM generate_series(1, 200) g RETURNING 1")
    keys = [r[0] for r in query(database, "SELECT ping_key FROM fleet.agents")]
    assert len(keys) == 200 and len(set(keys)) == 200
    assert all(len(k) == 43 and k.replace("-", "").replace("_", "").isalnum() for k in keys)


@pytest.mark.parametrize(("body", "received", "kept"), [
    ("short", 5, "short"),
    ("x" * MAX_MESSAGE, MAX_MESSAGE, "x" * MAX_MESSAGE),                    # exactly the cap: whole
    ("x" * (MAX_MESSAGE + 1), MAX_MESSAGE + 1, None),                       # one byte over: cut
    ("€" * 4000, 12000, None),                                              # 3-byte characters
    ("short", 50_000, None),                                                # the server passed on less
])
def test_cut_message_keeps_whole_characters_within_the_cap(database, body, received, kept) -> None:
    [(out,)] = query(database, "SELECT fleet.cut_message(%s, %s)", (body, received))
    if kept is not None:
        assert out == kept
        return
    marker = f"… [cut: {max(received, len(body.encode()))} bytes received]"
    assert out.endswith(marker) and body.startswith(out[: -len(marker)])
    assert MAX_MESSAGE - 3 <= len(out.encode()) <= MAX_MESSAGE or body == "short"
