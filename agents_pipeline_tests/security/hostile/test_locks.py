"""Row locks: naming every agent inside an open transaction locks only the attacker's own row,
and the evaluator ends the session that holds it."""

from __future__ import annotations

from agents_pipeline_tests.security.hostile.timeline import HONEST, LOCK_HOLD_S, query


def test_holding_every_row_locks_only_its_own_and_its_session_is_ended(timeline):
    out = timeline.outcomes
    refused = out["hold: refused for others"]
    assert len(refused) == HONEST + 1 and all(e.startswith("token refused for agent") for e in refused)
    assert out["hold: own item"] is None
    assert out["hold: ended after s"] is not None, "the lock-holding session was never ended"
    assert out["hold: ended after s"] < LOCK_HOLD_S + 10
    assert "terminat" in out["hold: ended with"] or "closed the connection" in out["hold: ended with"]
    ended = query(timeline, "SELECT ended_at IS NOT NULL FROM fleet.agent_row_locks")
    assert ended in ([], [(True,)])  # forgotten once released, or still marked ended
    alerts = [p for p in timeline.webhook if p.get("kind") == "agent_row_locked"]
    assert alerts and alerts[0]["agent"] == "mallory"
    assert [(alerts[0]["details"]["holder_login"],)] == query(
        timeline, "SELECT db_login FROM fleet.agents WHERE name = 'mallory'")  # its own login
    # once ended, the row was judged: mallory went quiet after its transaction died
    assert query(timeline, "SELECT status FROM fleet.agents WHERE name = 'mallory'") == [("down",)]
