"""`agents-pipeline db grant-agent`: settings that work, and no secret beyond the agent's own."""

from __future__ import annotations

import json

import psycopg2
import pytest

from agents_pipeline.cli.main import main
from agents_pipeline.core import registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs, make_url
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline_tests import pg

OPERATOR_PASSWORD = "operator-Secret-7d1e4c"


@pytest.fixture
def operator_env(db_url, pg_cluster, names, monkeypatch) -> str:
    """The operator's URL carrying a password (ignored by the socket's trust auth) and an
    agent login with no password yet."""
    kwargs = connect_kwargs(db_url)
    url = make_url(str(kwargs["dbname"]), user="postgres", host=str(kwargs["host"]), port=int(kwargs["port"]),
                   password=OPERATOR_PASSWORD)
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", url)
    admin = pg.admin_connect(pg_cluster)
    with admin.cursor() as cur:
        cur.execute(f'ALTER ROLE "{names.agent}" PASSWORD NULL')
    admin.close()
    return url


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out + out.err


def test_grant_agent_sets_a_working_password_once(operator_env, pg_cluster, names, capsys, database):
    port = str(pg_cluster.state()["port"])
    code, out = _run(capsys, "security", "grant-agent", "--host", "127.0.0.1", "--port", port, "--json")
    assert code == 0, out
    first = json.loads(out)
    assert first["role"] == names.agent and first["password"] == "new"
    assert OPERATOR_PASSWORD not in out and "postgres@" not in out
    kwargs = connect_kwargs(first["url"])
    assert (kwargs["user"], kwargs["host"], kwargs["port"]) == (names.agent, "127.0.0.1", int(port))
    assert first["env"]["AGENTS_PIPELINE_AGENT_TOKEN"].startswith("<")  # a hint, never a token

    token = registry.register_agent(database, "remote-1").token
    with SharedState(first["url"], agent="remote-1", token=token, retry_window=2) as s:  # TCP + SCRAM
        assert s.heartbeat() is not None

    code, out = _run(capsys, "db", "grant-agent", "--json")
    again = json.loads(out)
    assert code == 0 and again["password"] == "unchanged"
    assert kwargs["password"] not in out and "<password>" in again["url"]

    code, out = _run(capsys, "security", "grant-agent", "--new-password", "--host", "127.0.0.1", "--port", port,
                     "--json")
    rotated = json.loads(out)
    assert rotated["password"] == "new" and rotated["url"] != first["url"]
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(**connect_kwargs(first["url"])).close()
    psycopg2.connect(**connect_kwargs(rotated["url"])).close()

    log = pg_cluster.logfile.read_text(errors="replace")
    assert kwargs["password"] not in log and connect_kwargs(rotated["url"])["password"] not in log


def test_grant_agent_text_output_is_shell_exports(operator_env, capsys):
    code, out = _run(capsys, "db", "grant-agent")
    assert code == 0
    exports = [line for line in out.splitlines() if line.startswith("export ")]
    assert [line.split("=", 1)[0] for line in exports] == [
        "export AGENTS_PIPELINE_DATABASE_URL", "export AGENTS_PIPELINE_AGENT_TOKEN"]
    assert OPERATOR_PASSWORD not in out


def test_grant_agent_carries_tls_and_warns_without_it(operator_env, capsys, monkeypatch):
    code, out = _run(capsys, "security", "grant-agent", "--host", "db.example.net", "--json")
    plain = json.loads(out)
    assert code == 0 and any("not required to be encrypted" in n for n in plain["notes"])
    monkeypatch.setenv("AGENTS_PIPELINE_SSLMODE", "verify-full")
    code, out = _run(capsys, "security", "grant-agent", "--host", "db.example.net", "--json")
    tls = json.loads(out)
    assert connect_kwargs(tls["url"].replace("<password>", "x"))["sslmode"] == "verify-full"
    assert "AGENTS_PIPELINE_SSLROOTCERT" in tls["env"]
    assert not any("encrypted" in n for n in tls["notes"])


def test_grant_agent_restores_database_privileges_and_audit_passes(operator_env, capsys, names):
    """A database made from a template (or restored) lacks the database-level revokes;
    grant-agent puts them back, and `security audit` then reports nothing."""
    code, out = _run(capsys, "security", "audit", "--json")
    assert code == 1 and any("temporary tables" in f["problem"] for f in json.loads(out)["findings"])
    assert _run(capsys, "db", "grant-agent")[0] == 0
    code, out = _run(capsys, "security", "audit", "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "findings": []}


def test_grant_agent_before_migrations_names_the_fix(pg_cluster, monkeypatch, capsys):
    name = pg.fresh_database(pg_cluster, "template1")
    try:
        monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", pg_cluster.url(name))
        code, out = _run(capsys, "db", "grant-agent")
        assert code == 2 and "run `agents-pipeline db migrate` first" in out
    finally:
        pg.drop_database(pg_cluster, name)


def test_audit_needs_no_rights_beyond_reading_catalogs(db_url):
    """The audit only reads catalogs; it runs in a read-only transaction."""
    from agents_pipeline.defs.security.audit import audit

    db = Database(db_url + "&options=-c%20default_transaction_read_only%3Don", maxconn=1)
    try:
        assert all(f.role for f in audit(db))
    finally:
        db.close()


def test_an_agent_host_configured_from_grant_agent(operator_env, pg_cluster, capsys, monkeypatch, database):
    """The whole path of an agent host: settings from grant-agent, token from register, then the
    CLI heartbeat and the Agent helper as the agent login; rotate and revoke through the CLI."""
    from agents_pipeline.core.agent import Agent

    port = str(pg_cluster.state()["port"])
    code, out = _run(capsys, "security", "grant-agent", "--host", "127.0.0.1", "--port", port, "--json")
    agent_url = json.loads(out)["url"]
    code, out = _run(capsys, "agents", "register", "host-agent", "--json")
    token = json.loads(out)["token"]

    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", agent_url)  # now this is the agent host
    monkeypatch.setenv("AGENTS_PIPELINE_AGENT_TOKEN", token)
    code, out = _run(capsys, "heartbeat", "host-agent", "--message", "from the host")
    assert code == 0 and "ok heartbeat stored" in out
    with Agent("host-agent", interval_s=60) as agent, agent.unit_of_work("job"):
        pass
    assert _run(capsys, "agents", "register", "sneaky")[0] == 2  # the agent login cannot register
    assert _run(capsys, "agents", "rotate-token", "host-agent")[0] == 2  # nor rotate

    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", operator_env)  # back on the operator's host
    code, out = _run(capsys, "agents", "rotate-token", "host-agent")
    new_token = out.strip().splitlines()[-1]
    assert code == 0 and new_token.startswith("apt_") and new_token != token

    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", agent_url)
    code, out = _run(capsys, "heartbeat", "host-agent")
    assert code == 2 and "token refused" in out
    monkeypatch.setenv("AGENTS_PIPELINE_AGENT_TOKEN", new_token)
    assert _run(capsys, "heartbeat", "host-agent")[0] == 0

    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", operator_env)
    assert _run(capsys, "agents", "revoke-token", "host-agent")[0] == 0
    monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", agent_url)
    code, out = _run(capsys, "heartbeat", "host-agent")
    assert code == 2 and "token refused" in out
    stored = database.transaction(lambda cur: (cur.execute(
        "SELECT count(*), count(*) FILTER (WHERE kind = 'start') FROM fleet.heartbeats h "
        "JOIN fleet.agents a USING (agent_id) WHERE a.name = 'host-agent'"), cur.fetchone())[1])
    assert tuple(stored) == (7, 1)  # CLI; helper: starting, loop, start, success, stopped; CLI after rotation


def test_restore_onto_a_server_without_the_roles(pg_cluster, monkeypatch, capsys, tmp_path):
    """The recovery path in docs/security.md: a dump restored with --no-owner --no-acl where the
    roles do not exist, then `db grant-agent` recreates the roles, ownership and every grant."""
    import subprocess
    import uuid as _uuid

    from agents_pipeline.core import migrations
    from agents_pipeline.core.roles import Roles
    from agents_pipeline.defs.security.audit import audit
    from agents_pipeline_tests.security.conftest import role_url

    prefix = f"rs_{_uuid.uuid4().hex[:8]}"
    names = Roles(prefix)
    monkeypatch.setenv(migrations.ROLE_PREFIX_ENV, prefix)
    bindir = pg_cluster.state()["bindir"]
    conn_args = ["-h", str(pg_cluster.sockdir), "-p", str(pg_cluster.state()["port"]), "-U", "postgres"]
    source, target = pg.fresh_database(pg_cluster, "template0"), pg.fresh_database(pg_cluster, "template0")
    try:
        conn = psycopg2.connect(**connect_kwargs(pg_cluster.url(source)))
        try:
            migrations.migrate(conn)
        finally:
            conn.close()
        dump = tmp_path / "fleet.dump"
        subprocess.run([f"{bindir}/pg_dump", *conn_args, "-Fc", "--no-owner", "--no-acl", "-f", str(dump), source],
                       check=True, capture_output=True)
        pg.drop_database(pg_cluster, source)
        admin = pg.admin_connect(pg_cluster)
        with admin.cursor() as cur:
            cur.execute(f'DROP ROLE "{names.agent}", "{names.pipeline}", "{names.owner}"')
        admin.close()
        restored = subprocess.run([f"{bindir}/pg_restore", *conn_args, "--no-owner", "--no-acl", "-d", target,
                                   str(dump)], capture_output=True, text=True)
        assert restored.returncode == 0, restored.stderr

        monkeypatch.setenv("AGENTS_PIPELINE_DATABASE_URL", pg_cluster.url(target))
        code, out = _run(capsys, "db", "grant-agent", "--json")
        assert code == 0, out
        db = Database(pg_cluster.url(target), maxconn=1)
        try:
            assert [str(f) for f in audit(db, names)] == []
            token = registry.register_agent(db, "restored").token
        finally:
            db.close()
        with SharedState(role_url(pg_cluster.url(target), pg_cluster, names.agent), agent="restored",
                         token=token, retry_window=2) as s:
            assert s.heartbeat() is not None and s.set("restored/after-restore", 1) == 1
    finally:
        pg.drop_database(pg_cluster, target)
