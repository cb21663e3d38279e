"""One agent against another: a stolen token is refused on the thief's login, names cannot be
probed, nothing of another agent is read or changed, and no token or proof reaches the log."""

from __future__ import annotations

from agents_pipeline.core.registry import token_proof
from agents_pipeline_tests.security.hostile.timeline import query


def test_an_agents_own_login_acts_for_that_agent_only(timeline):
    """A token stolen from another agent is refused on the thief's own login."""
    assert timeline.outcomes["stolen token, own login"].startswith("token refused for agent 'honest-01'")
    assert "token refused for agent 'honest-01'" in timeline.outcomes["stolen token, kv"]


def test_names_cannot_be_probed(timeline):
    unknown = timeline.outcomes["unknown agent"].replace("'no-such-agent'", "NAME")
    wrong = timeline.outcomes["wrong token"].replace("'honest-00'", "NAME")
    assert unknown == wrong and "token refused for agent NAME" in unknown


def test_nothing_of_another_agent_is_read_or_changed(timeline):
    assert timeline.outcomes["claim others' messages"] == []
    assert timeline.outcomes["read another's help request"] == []
    rows = query(timeline, """SELECT count(*) FROM fleet.heartbeats h JOIN fleet.agents a USING (agent_id)
                              WHERE a.name <> 'mallory' AND h.message IN ('pwned', 'flood')""")
    assert rows == [(0,)]
    assert query(timeline, "SELECT value FROM fleet.kv_store WHERE key = 'honest-00/state'") == [({"ok": True},)]
    assert query(timeline, """SELECT count(*) FROM fleet.agents
                              WHERE name LIKE 'honest-%' AND last_message IN ('pwned', 'flood')""") == [(0,)]


def test_no_token_or_proof_reaches_the_server_log(timeline, pg_cluster):
    """With every statement of every login logged, neither a token nor its proof (the SHA-256 the
    client presents) is in the server log: the proof travels in the startup packet, and
    registration sends only the hash of the proof."""
    assert "cli-agent: ok heartbeat stored" in timeline.outcomes["cli"][0], timeline.outcomes["cli"]
    log = pg_cluster.logfile.read_text(errors="replace")
    assert "fleet.record_heartbeats" in log and "fleet.kv_set" in log   # agent statements were logged
    assert "INSERT INTO fleet.agents" in log                            # so were the operator's
    for name, token in timeline.tokens.items():
        assert token not in log, name
        if name not in ("mallory", "honest-01"):  # mallory's raw attacks pass its own and a stolen proof
            assert token_proof(token).hex() not in log, name
