"""Floods: heartbeats past the rate limit are refused per item, counted and alerted on; a
connection flood stops at the attacker's own login's limit."""

from __future__ import annotations

from agents_pipeline.core import registry
from agents_pipeline_tests.security.hostile.timeline import query


def test_a_heartbeat_flood_is_refused_per_item_counted_and_alerted(timeline):
    stored, refused, retry = timeline.outcomes["flood"]
    assert refused > stored > 0
    assert retry is not None and retry > 0
    counted = query(timeline, """SELECT b.refused_total FROM fleet.rate_buckets b JOIN fleet.agents a USING (agent_id)
                                 WHERE a.name = 'mallory' AND b.kind = 'heartbeats'""")
    assert counted == [(refused,)]
    assert any(p.get("kind") == "agent_throttled" and p.get("agent") == "mallory" for p in timeline.webhook)
    assert query(timeline, """SELECT count(*) FROM fleet.rate_buckets b JOIN fleet.agents a USING (agent_id)
                              WHERE a.name LIKE 'honest-%' AND b.refused_total > 0""") == [(0,)]


def test_a_connection_flood_uses_up_only_the_attackers_own_login(timeline):
    """Every agent has its own login with its own CONNECTION LIMIT: the flood stops at that limit,
    and the honest agents' heartbeats during it were all stored (test_every_honest_heartbeat_is_stored)."""
    opened, error = timeline.outcomes["flood: connections"]
    assert opened == registry.connection_limit()
    assert "too many connections for role" in error
