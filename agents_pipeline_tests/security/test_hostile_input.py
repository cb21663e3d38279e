"""Hostile names reach SQL only as bound values or allow-listed identifiers: stored verbatim
or refused, never executed."""

from __future__ import annotations

import psycopg2
import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.core import errors, registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.shared_state import SharedState

HOSTILE = [
    "'); DROP TABLE fleet.agents; --",
    'x"); DROP TABLE fleet.heartbeats; --',
    "o'brien",
    'say "hi"',
    "a; DELETE FROM fleet.kv_store",
    "-- just a comment",
    "$$; DROP SCHEMA fleet CASCADE; $$",
    "%s %(name)s %%",  # psycopg2's own placeholders
    "back\\slash\\'",
    "名前 🚀",
]
CONTROL = ["line\nbreak", "nul\x00byte", "tab\there", "esc\x1b[31m"]


def _intact(db: Database) -> tuple[int, int]:
    def work(cur):
        cur.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'fleet'")
        tables = cur.fetchone()[0]
        cur.execute("SELECT count(*) FROM fleet.agents")
        return tables, cur.fetchone()[0]

    return db.transaction(work)


def test_hostile_agent_names_and_keys_are_stored_verbatim(database, agent_url):
    tables_before, _ = _intact(database)
    tokens = {name: registry.register_agent(database, name).token for name in HOSTILE}
    for name in HOSTILE:
        with SharedState(agent_url, agent=name, token=tokens[name], retry_window=2) as s:
            assert s.heartbeat(message=name) is not None
            assert s.set(f"{name}/k", {"by": name}) == 1
            assert s.get(f"{name}/k").value == {"by": name}
            mid = s.send_message(HOSTILE[0], name, {"text": name})
            req = s.submit_help_request(name)
            assert s.get_help_request(req)["question"] == name
        assert mid > 0

    def stored(cur):
        cur.execute("SELECT a.name, h.message FROM fleet.agents a JOIN fleet.heartbeats h USING (agent_id)")
        beats = dict(cur.fetchall())
        cur.execute("SELECT key, updated_by FROM fleet.kv_store")
        keys = dict(cur.fetchall())
        cur.execute("SELECT message_type FROM fleet.agent_messages")
        types = {r[0] for r in cur.fetchall()}
        return beats, keys, types

    beats, keys, types = database.transaction(stored)
    assert beats == {name: name for name in HOSTILE}
    assert keys == {f"{name}/k": name for name in HOSTILE}
    assert types == set(HOSTILE)
    assert _intact(database) == (tables_before, len(HOSTILE))


@pytest.mark.parametrize("name", CONTROL)
def test_control_characters_are_refused_before_reaching_the_database(database, name):
    with pytest.raises(errors.ValidationError):
        registry.register_agent(database, name)
    with SharedState(database.pool.url, retry_window=2) as s, pytest.raises(errors.ValidationError):
        s.set(name, 1)
    assert _intact(database)[1] == 0
    assert database.transaction(lambda cur: (cur.execute("SELECT count(*) FROM fleet.kv_store"),
                                             cur.fetchone()[0])[1]) == 0


def test_hostile_token_is_just_a_wrong_token(database, agent_url):
    registry.register_agent(database, "victim")
    for token in ("' OR '1'='1", "x'); UPDATE fleet.agents SET token_hash = NULL; --"):
        with SharedState(agent_url, agent="victim", token=token, retry_window=2) as s:
            with pytest.raises(errors.AuthError):
                s.heartbeat()
    assert database.transaction(lambda cur: (cur.execute(
        "SELECT token_hash IS NOT NULL AND last_seen IS NULL FROM fleet.agents WHERE name = 'victim'"),
        cur.fetchone()[0])[1]) is True


@pytest.mark.parametrize("table", ["heartbeats; DROP TABLE fleet.agents", "agents", 'heartbeats" CASCADE --'])
def test_partition_table_names_come_from_an_allow_list(database, table):
    with pytest.raises(errors.ValidationError, match="not a partitioned fleet table"):
        database.transaction(lambda cur: cur.execute(
            "SELECT fleet.ensure_partitions(%s, current_date, current_date)", (table,)))
    assert _intact(database)[0] > 0


def test_hostile_names_through_the_cli(db_env, capsys):
    name = "'); DROP TABLE fleet.agents; --"
    assert main(["agents", "register", name, "--json"]) == 0
    capsys.readouterr()
    assert main(["heartbeat", name, "--message", "$$; DROP SCHEMA fleet CASCADE; $$"]) == 0
    assert main(["status", "--json"]) == 0
    out = capsys.readouterr().out
    assert name.replace('"', '\\"') in out
    conn = psycopg2.connect(db_env.replace("postgresql+psycopg2", "postgresql"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT last_message FROM fleet.agents WHERE name = %s", (name,))
            assert cur.fetchone() == ("$$; DROP SCHEMA fleet CASCADE; $$",)
    finally:
        conn.close()
