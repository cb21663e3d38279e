"""Broadcast by capability and peer listing, as agents on their own logins meet them: one copy per
capable agent (the sender and the others left out), idempotent retries, the rate drawn per copy,
and a peer list that shows names, types, capabilities and statuses and nothing more."""

from __future__ import annotations

import uuid

import psycopg2
import pytest

from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.errors import RateLimitedError, ValidationError
from agents_pipeline.core.peers import Peer
from agents_pipeline.core.registry import token_proof
from agents_pipeline_tests.coordination.conftest import Fleet


def test_a_broadcast_reaches_every_agent_with_the_capability_once(fleet: Fleet) -> None:
    sender = fleet.agent("sender", ("index",))
    indexers = [fleet.agent(f"indexer-{i}", ("index", "other")) for i in range(3)]
    bystander = fleet.agent("bystander", ("render",))
    key = uuid.uuid4()
    assert sender.broadcast("index", "reindex", {"since": "2026-12-01"}, client_id=key) == 3
    assert sender.broadcast("index", "reindex", {"since": "2026-12-01"}, client_id=key) == 3   # a retry
    for indexer in indexers:
        (message,) = indexer.claim_messages(10)
        assert (message.from_agent, message.message_type, message.payload) == ("sender", "reindex",
                                                                                {"since": "2026-12-01"})
        indexer.ack_message(message.message_id)
        assert indexer.claim_messages(10) == []
    assert bystander.claim_messages(10) == [] and sender.claim_messages(10) == []
    assert fleet.sql("SELECT count(*) FROM fleet.agent_messages") == [(3,)]
    # Three copies drew three tokens, the retry none.
    tokens = fleet.sql("""SELECT b.tokens FROM fleet.rate_buckets b JOIN fleet.agents a USING (agent_id)
                          WHERE a.name = 'sender' AND b.kind = 'messages'""")[0][0]
    assert tokens == pytest.approx(597, abs=0.5)
    assert sender.broadcast("nobody-has-this", "x") == 0


def test_a_broadcast_wider_than_the_burst_is_refused_as_a_size_and_a_spent_bucket_as_a_rate(fleet: Fleet) -> None:
    sender = fleet.agent("sender")
    for i in range(3):
        fleet.agent(f"indexer-{i}", ("index",))
    fleet.sql("""INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst)
                 SELECT agent_id, 'messages', 0.01, 2 FROM fleet.agents WHERE name = 'sender'""")
    with pytest.raises(ValidationError, match="3 of messages is more than the 2 a burst allows"):
        sender.broadcast("index", "reindex")
    fleet.sql("UPDATE fleet.rate_limit_overrides SET burst = 4")
    assert sender.broadcast("index", "reindex") == 3
    with pytest.raises(RateLimitedError) as refused:
        sender.broadcast("index", "reindex")
    assert refused.value.retry_after_s > 100
    assert fleet.sql("SELECT count(*) FROM fleet.agent_messages") == [(3,)]
    with pytest.raises(ValidationError, match="capability must be"):
        sender.broadcast("not a label", "x")


def test_peers_are_names_types_capabilities_and_statuses_and_nothing_more(fleet: Fleet) -> None:
    me = fleet.agent("me", ("index",))
    fleet.agent("writer", ("summarise", "render"))
    fleet.agent("quiet")
    fleet.sql("UPDATE fleet.agents SET status = 'down', last_message = 'secret error text' WHERE name = 'quiet'")
    fleet.sql("INSERT INTO fleet.agents (name, placeholder) VALUES ('imported-ghost', true)")
    assert me.peers() == [Peer("quiet", "generic", (), "down"), Peer("writer", "generic", ("render", "summarise"), "new")]
    url, token = fleet.logins["me"]
    conn = psycopg2.connect(**connect_kwargs(url), options=f"-c agents_pipeline.proof={token_proof(token).hex()}")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM fleet.list_peers('me', NULL)")
            assert [d.name for d in cur.description] == ["name", "agent_type", "capabilities", "status", "retry_after_s"]
    finally:
        conn.close()


def test_peer_listings_are_rate_limited(fleet: Fleet) -> None:
    me = fleet.agent("me")
    fleet.sql("""INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst)
                 SELECT agent_id, 'peers', 0.01, 1 FROM fleet.agents WHERE name = 'me'""")
    assert me.peers() == []
    with pytest.raises(RateLimitedError, match="peer listing refused"):
        me.peers()
