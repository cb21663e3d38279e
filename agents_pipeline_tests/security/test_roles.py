"""The agent login can do exactly what SharedState needs, and nothing beyond it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg2
import psycopg2.errors
import pytest

from agents_pipeline.core import errors, registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.roles import roles
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.defs.security.audit import audit
from agents_pipeline_tests import pg
from agents_pipeline_tests.security.conftest import role_url


def _count(db_url: str, sql: str, params: tuple = ()) -> int:
    db = Database(db_url, maxconn=1, retry_window=2)
    try:
        return db.transaction(lambda cur: (cur.execute(sql, params), cur.fetchone()[0])[1])
    finally:
        db.close()


def test_audit_finds_the_roles_as_designed(secured_url, names):
    db = Database(secured_url, maxconn=1)
    try:
        assert [str(f) for f in audit(db, names)] == []
    finally:
        db.close()


def test_shared_state_works_as_the_agent_role(agent_url, secured_url, two_agents):
    """Every SharedState method, connected as the agent login with the agent's own token."""
    with SharedState(agent_url, agent="alpha", token=two_agents["alpha"], retry_window=3) as alpha, \
         SharedState(agent_url, agent="bravo", token=two_agents["bravo"], retry_window=3) as bravo:
        assert alpha.heartbeat(message="hello") is not None
        assert alpha.start(message="unit") is not None
        assert alpha.fail(message="broke") is not None
        results = alpha.heartbeat_many([{"agent": "alpha"}, {"agent": "alpha", "kind": "log"}])
        assert all(not isinstance(r, Exception) for r in results)
        assert alpha.set("alpha/cfg", {"n": 1}) == 1
        assert alpha.compare_and_set("alpha/cfg", {"n": 2}, expected_version=1) == 2
        with pytest.raises(errors.ConflictError):
            alpha.compare_and_set("alpha/cfg", {"n": 3}, expected_version=1)
        with pytest.raises(errors.AuthError, match="may not read"):
            bravo.get("alpha/cfg")
        with pytest.raises(errors.AuthError, match="may not write"):
            bravo.set("alpha/cfg", {"n": 666})
        registry.grant_keys(Database(secured_url, maxconn=1), "bravo", "alpha/")
        got = bravo.get("alpha/cfg")
        assert got is not None and got.value == {"n": 2} and got.updated_by == "alpha"
        mid = alpha.send_message("bravo", "task", {"do": "x"})
        claimed = bravo.claim_messages(5)
        assert [(m.message_id, m.from_agent, m.payload) for m in claimed] == [(mid, "alpha", {"do": "x"})]
        bravo.ack_message(mid)
        rid = alpha.record_conversation("prompt", "response", model="m", prompt_tokens=3, completion_tokens=4)
        assert alpha.record_conversation("prompt", "response", model="m", run_id=rid) == rid
        assert alpha.report_metrics({"cpu_percent": 12.5, "rss_bytes": 1024}, host="remote-1") == 2
        req = alpha.submit_help_request("why am I down?", {"k": "v"})
        assert alpha.get_help_request(req)["question"] == "why am I down?"
        assert bravo.get_help_request(req) is None  # not bravo's request
        created = alpha.db.transaction(lambda cur: (cur.execute("SELECT fleet.ensure_current_partitions()"),
                                                    cur.fetchone()[0])[1])
        assert created == 0  # present already; the call itself is what is allowed
    assert _count(secured_url, "SELECT heartbeat_count FROM fleet.agents WHERE name = 'alpha'") == 4  # 'log' not counted
    assert _count(secured_url, "SELECT count(*) FROM fleet.heartbeats") == 5
    assert _count(secured_url, "SELECT count(*) FROM fleet.llm_conversations") == 1
    assert _count(secured_url, "SELECT count(*) FROM fleet.perf_samples WHERE source = 'remote'") == 2


FORBIDDEN = {
    "create table in fleet": "CREATE TABLE fleet.evil (x int)",
    "create table in public": "CREATE TABLE public.evil (x int)",
    "create temporary table": "CREATE TEMP TABLE evil (x int)",
    "create schema": "CREATE SCHEMA evil",
    "drop table": "DROP TABLE fleet.heartbeats",
    "alter table": "ALTER TABLE fleet.agents ADD COLUMN evil int",
    "delete history": "DELETE FROM fleet.heartbeats",
    "truncate history": "TRUNCATE fleet.status_changes",
    "update another agent's status": "UPDATE fleet.agents SET status = 'up' WHERE name = 'bravo'",
    "read conversations": "SELECT prompt FROM fleet.llm_conversations",
    "read help requests": "SELECT question FROM fleet.help_requests",
    "read token hashes": "SELECT token_hash FROM fleet.agents",
    "read the key-value table directly": "SELECT * FROM fleet.kv_store",
    "register an agent": "INSERT INTO fleet.agents (name) VALUES ('intruder')",
    "insert a heartbeat directly": "INSERT INTO fleet.heartbeats (agent_id) VALUES (1)",
    "create partitions at will": "SELECT fleet.ensure_partitions('heartbeats', '2001-01-01', '2001-01-02')",
    "probe tokens": "SELECT fleet.authenticate('bravo', 'guess')",
    "re-apply grants": "SELECT fleet.apply_security()",
    "create roles": "SELECT fleet.ensure_roles()",
    "read the migration ledger": "SELECT * FROM public.agents_pipeline_migrations",
    "turn activity tracking back on": "SET track_activities = on",
}


@pytest.fixture(scope="module")
def shared_agent_db(pg_cluster, pg_template, request) -> Iterator[tuple[str, str]]:
    """One database for all refused actions (nothing they try may change it): (admin, agent) URLs."""
    name = pg.fresh_database(pg_cluster, pg_template)
    admin = pg_cluster.url(name)
    request.addfinalizer(lambda: pg.drop_database(pg_cluster, name))
    db = Database(admin, maxconn=1)
    try:
        db.transaction(lambda cur: cur.execute("SELECT fleet.apply_security()"))
        for agent in ("alpha", "bravo"):
            registry.register_agent(db, agent)
    finally:
        db.close()
    yield admin, role_url(admin, pg_cluster, roles().agent)


@pytest.mark.parametrize("action", sorted(FORBIDDEN))
def test_agent_role_is_refused(action, shared_agent_db):
    admin, agent = shared_agent_db
    before = _count(admin, "SELECT count(*) FROM fleet.agents")
    conn = psycopg2.connect(**connect_kwargs(agent))
    try:
        conn.autocommit = True
        with conn.cursor() as cur, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute(FORBIDDEN[action])
    finally:
        conn.close()
    assert _count(admin, "SELECT count(*) FROM fleet.agents") == before


def test_registering_an_agent_as_the_agent_role_is_an_auth_error(agent_url, secured_url):
    db = Database(agent_url, maxconn=1, retry_window=2)
    try:
        with pytest.raises(errors.AuthError, match="permission denied"):
            registry.register_agent(db, "intruder")
    finally:
        db.close()
    assert _count(secured_url, "SELECT count(*) FROM fleet.agents WHERE name = 'intruder'") == 0


def test_another_agents_token_is_refused_and_stores_nothing(agent_url, secured_url, two_agents):
    """Agent alpha heartbeating as bravo with its own token: refused, no row, bravo untouched."""
    with SharedState(agent_url, agent="bravo", token=two_agents["alpha"], retry_window=2) as fake:
        with pytest.raises(errors.AuthError, match="token refused"):
            fake.heartbeat()
        with pytest.raises(errors.AuthError):
            fake.set("k", 1)
        with pytest.raises(errors.AuthError):
            fake.send_message(None, "t")
        with pytest.raises(errors.AuthError):
            fake.claim_messages()
        with pytest.raises(errors.AuthError):
            fake.submit_help_request("q")
        with pytest.raises(errors.AuthError):
            fake.record_conversation("p", "r")
    with SharedState(agent_url, agent="bravo", token=None, retry_window=2) as tokenless:
        with pytest.raises(errors.AuthError):
            tokenless.heartbeat()
        with pytest.raises(errors.AuthError):
            tokenless.set("k", 1, agent=None)  # no name: only operators may write anonymously
    assert _count(secured_url, "SELECT count(*) FROM fleet.heartbeats") == 0
    assert _count(secured_url, "SELECT count(*) FROM fleet.agents WHERE last_seen IS NOT NULL") == 0
    for table in ("kv_store", "agent_messages", "help_requests", "llm_conversations"):
        assert _count(secured_url, f"SELECT count(*) FROM fleet.{table}") == 0  # noqa: S608


def test_rotated_and_revoked_tokens(agent_url, database, two_agents):
    old = two_agents["alpha"]
    new = registry.rotate_token(database, "alpha")
    assert new != old
    with SharedState(agent_url, agent="alpha", token=old, retry_window=2) as s:
        with pytest.raises(errors.AuthError):
            s.heartbeat()
    with SharedState(agent_url, agent="alpha", token=new, retry_window=2) as s:
        assert s.heartbeat() is not None
        registry.revoke_token(database, "alpha")
        with pytest.raises(errors.AuthError):
            s.heartbeat()
        with pytest.raises(errors.AuthError):
            s.set("after-revoke", 1)


def test_agents_cannot_read_each_others_tokens_in_pg_stat_activity(agent_url, agent_conn, two_agents, db_url):
    """Regression: every agent shares one login and psycopg2 puts parameters in the query text;
    without track_activities=off for that login, pg_stat_activity showed bravo's running
    statement, token included, to any other agent session (verified before the fix)."""
    bravo = SharedState(agent_url, agent="bravo", token=two_agents["bravo"], retry_window=2)
    locker = psycopg2.connect(**connect_kwargs(db_url))
    try:
        bravo.set("bravo/busy", 1)
        with locker.cursor() as lc:  # hold the row so bravo's next write waits, mid-statement
            lc.execute("SELECT 1 FROM fleet.kv_store WHERE key = 'bravo/busy' FOR UPDATE")
        writer = threading.Thread(target=bravo.set, args=("bravo/busy", 2))
        writer.start()
        deadline = time.monotonic() + 5
        with locker.cursor() as lc:
            while time.monotonic() < deadline:
                lc.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if lc.fetchone()[0]:
                    break
                time.sleep(0.05)
        with agent_conn.cursor() as cur:
            cur.execute("SELECT count(*), string_agg(coalesce(query, ''), ' ') FROM pg_stat_activity "
                        "WHERE usename = current_user AND pid <> pg_backend_pid()")
            sessions, texts = cur.fetchone()
        locker.rollback()
        writer.join(10)
        assert sessions >= 1
        assert two_agents["bravo"] not in (texts or "")
        assert bravo.get("bravo/busy").version == 2
    finally:
        locker.close()
        bravo.close()


def test_pipeline_login_works_on_tables_but_cannot_change_the_schema(secured_url, pg_cluster, names, database):
    login = f"ap_test_dagster_{uuid.uuid4().hex[:8]}"
    database.transaction(lambda cur: cur.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE "{names.pipeline}"'))
    try:
        db = Database(role_url(secured_url, pg_cluster, login), maxconn=1, retry_window=2)
        try:
            reg = registry.register_agent(db, "by-pipeline")
            registry.set_paused(db, "by-pipeline", True)
            with SharedState(db.pool.url, retry_window=2) as operator:  # operator: no token needed
                assert operator.heartbeat("by-pipeline") is not None
            assert db.transaction(lambda cur: (cur.execute(
                "SELECT fleet.ensure_partitions('heartbeats', current_date + 30, current_date + 31)"),
                cur.fetchone()[0])[1]) == 2
            assert db.transaction(lambda cur: (cur.execute(
                "SELECT max(version) FROM public.agents_pipeline_migrations"), cur.fetchone()[0])[1]) >= 10
            with pytest.raises(errors.AuthError):
                db.transaction(lambda cur: cur.execute("CREATE TABLE fleet.evil (x int)"))
            with pytest.raises(errors.AuthError):
                db.transaction(lambda cur: cur.execute("DROP TABLE fleet.kv_store"))
            assert reg.agent_id > 0
        finally:
            db.close()
    finally:
        database.transaction(lambda cur: cur.execute(f'DROP ROLE "{login}"'))


def test_audit_catches_a_later_function_that_public_may_execute(secured_url, names, database):
    """Regression guard for later migrations: PostgreSQL lets PUBLIC execute a new function,
    so one created without `SELECT fleet.apply_security()` is open to the agent login."""
    database.transaction(lambda cur: cur.execute(
        "CREATE FUNCTION fleet.drop_everything() RETURNS int LANGUAGE sql AS 'SELECT 1'"))
    found = {str(f) for f in audit(database, names)}
    assert f"{names.agent}: may execute fleet.drop_everything()" in found
    assert "PUBLIC: may execute fleet.drop_everything()" in found
    assert f"{names.owner}: does not own function fleet.drop_everything()" in found
    database.transaction(lambda cur: cur.execute("SELECT fleet.apply_security()"))
    assert audit(database, names) == []


def test_role_names_follow_the_configured_prefix(pg_cluster, monkeypatch):
    """Two deployments on one server: a second prefix gets its own three roles, and applying
    the migrations to another database reuses roles that already exist."""
    from agents_pipeline.core import migrations
    from agents_pipeline.core.roles import Roles

    monkeypatch.setenv(migrations.ROLE_PREFIX_ENV, "staging_fleet")
    created = []
    try:
        for _ in range(2):
            name = f"prefix_{uuid.uuid4().hex[:8]}"
            conn = pg.admin_connect(pg_cluster)
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
            conn.close()
            created.append(name)
            mconn = psycopg2.connect(**connect_kwargs(pg_cluster.url(name)))
            try:
                assert "0010_roles.sql" in migrations.migrate(mconn)
            finally:
                mconn.close()
            db = Database(pg_cluster.url(name), maxconn=1)
            try:
                assert audit(db, Roles("staging_fleet")) == []
                owner = db.transaction(lambda cur: (cur.execute(
                    "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = 'fleet'"), cur.fetchone()[0])[1])
                assert owner == "staging_fleet_owner"
            finally:
                db.close()
    finally:
        for name in created:
            pg.drop_database(pg_cluster, name)


def test_tokens_never_travel_in_statement_text(db_url, pg_cluster):
    """Regression: register/rotate sent fleet.token_hash('<token>'), so the token sat in the
    operator's statement text (pg_stat_activity, the server log); now only its hash does."""
    name = str(connect_kwargs(db_url)["dbname"])
    admin = pg.admin_connect(pg_cluster)
    with admin.cursor() as cur:
        cur.execute(f"ALTER DATABASE \"{name}\" SET log_statement = 'all'")
    admin.close()
    db = Database(db_url, maxconn=1, retry_window=2)
    try:
        first = registry.register_agent(db, "logged").token
        second = registry.rotate_token(db, "logged")
        assert db.transaction(lambda cur: (cur.execute(
            "SELECT token_hash = fleet.token_hash(%s) FROM fleet.agents WHERE name = 'logged'", ("probe",)),
            cur.fetchone()[0])[1]) is False
    finally:
        db.close()
    log = pg_cluster.logfile.read_text(errors="replace")
    assert "fleet.agents" in log  # statements of this test were logged
    assert first not in log and second not in log
    with SharedState(db_url, agent="logged", token=second, retry_window=2) as s:
        assert s.heartbeat() is not None  # the stored hash is the one the functions check
