"""The API's own login and its logs: it may call the agent functions and nothing else, it reads
no table and no ping key, it is never an operator, and no key or token reaches its log."""

from __future__ import annotations

import hashlib

import psycopg2
import pytest
from psycopg2 import sql

from agents_pipeline.core import ping_keys
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.roles import roles
from agents_pipeline.defs.security.audit import audit
from agents_pipeline_tests.api import server as api_process
from agents_pipeline_tests.security.conftest import role_url


def _try(url: str, sql: str) -> str:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return f"allowed: {cur.fetchall()}"
    except psycopg2.Error as exc:
        return exc.pgcode or "error"
    finally:
        conn.close()


@pytest.mark.parametrize("login", ["api", "agent"])
def test_neither_the_api_nor_an_agent_login_reads_tables_or_ping_keys(api_db, pg_cluster, new_agent, login) -> None:
    new_agent("secretive")
    url = role_url(api_db, pg_cluster, getattr(roles(), login))
    for statement in ("SELECT ping_key FROM fleet.agents", "SELECT count(*) FROM fleet.heartbeats",
                "SELECT token_hash FROM fleet.agents", "SELECT * FROM fleet.rate_limit_overrides",
                "SELECT fleet.store_heartbeats(ARRAY[1::bigint], ARRAY[NULL], ARRAY['ok'], ARRAY[now()], "
                "ARRAY['forged'], ARRAY[NULL::jsonb])"):
        assert _try(url, statement) == "42501", (login, statement)     # insufficient_privilege
    pings = "SELECT * FROM fleet.record_pings(ARRAY[''::bytea], ARRAY[''], ARRAY[NULL], ARRAY[0::bigint])"
    assert _try(url, pings) == ("allowed: [(1, None, 'ping key refused', None)]" if login == "api" else "42501")


def test_the_audit_holds_the_api_login_to_its_design(operator_db) -> None:
    assert [str(f) for f in audit(operator_db)] == []
    api = sql.Identifier(roles().api)
    operator_db.transaction(lambda cur: cur.execute(sql.SQL("GRANT SELECT ON fleet.agents TO {}").format(api)))
    try:
        assert f"{roles().api}: has privileges on fleet.agents" in {str(f) for f in audit(operator_db)}
    finally:
        operator_db.transaction(lambda cur: cur.execute(sql.SQL("REVOKE SELECT ON fleet.agents FROM {}").format(api)))


def test_the_server_refuses_to_run_as_an_operator(api_db, tmp_path) -> None:
    """Guards against deploying the API with the operator's login: it could then act for any
    agent without a key or token."""
    log_path = tmp_path / "operator.log"
    with pytest.raises(AssertionError, match="did not serve"):
        api_process.start(api_db, log_path, wait_s=20)
    log = log_path.read_text()
    assert "may read or write the agent registry" in log and "never an operator's" in log


def test_no_key_token_or_proof_reaches_the_servers_log(api_server, new_agent) -> None:
    """Every kind of request that carries a secret, answered every way (200, 400, 401, 404, 413,
    429-free), then the whole log of the module's server is searched for any secret of this
    test's agents: the key, its hash, the token, its proof (raw hex)."""
    good, other = new_agent("logged"), new_agent("other")
    key, token = good.ping_key, good.token
    assert api_server.request("GET", f"/ping/{key}")[0] == 200
    assert api_server.request("POST", f"/ping/{key}/log?x={key}", b"body")[0] == 200
    assert api_server.request("GET", f"/ping/{key}/bogus")[0] == 400
    assert api_server.request("POST", f"/ping/{key}", b"x" * 200_000)[0] == 413
    assert api_server.request("GET", f"/ping/{other.ping_key[:-1]}Z")[0] in (200, 404)
    assert api_server.post_json(f"/v1/agents/{good.name}/heartbeats", {"heartbeats": [{}]}, token)[0] == 200
    assert api_server.post_json(f"/v1/agents/{other.name}/heartbeats", {"heartbeats": [{}]}, token)[0] == 401
    assert api_server.post_json(f"/v1/agents/{good.name}/heartbeats", {"heartbeats": [{"kind": 1}]}, token)[0] == 400
    log = api_server.log()
    assert "/ping/***" in log and "/v1/agents/" in log       # the requests were logged, redacted
    secrets = {key, other.ping_key, token, other.token, ping_keys.key_hash(key).hex(),
               hashlib.sha256(token.encode()).hexdigest()}
    found = sorted(s for s in secrets if s in log)
    assert found == [], "secrets in the API server's log"


def test_no_operator_key_or_token_of_the_calls_reaches_the_log(api_server, operator_db, new_agent) -> None:
    """The agent calls and the operator routes, answered 200, 400, 401, 403 and 404, leave no
    token, operator key, proof or key-value key (a query string) in the server's log."""
    from agents_pipeline.core import api_keys

    reg = new_agent("quiet-caller")
    op_key = api_keys.create_api_key(operator_db, f"log-{reg.name[-8:]}")
    auth = {"Authorization": f"Bearer {reg.token}"}
    private_key = f"{reg.name}/secret-place"
    assert api_server.request("PUT", f"/v1/agents/{reg.name}/kv?key={private_key}", b'{"v": 1}', auth)[0] == 200
    assert api_server.request("GET", f"/v1/agents/{reg.name}/kv?key=other/{private_key}", None, auth)[0] == 403
    assert api_server.request("POST", f"/v1/agents/{reg.name}/tasks", b"{bad", auth)[0] == 400
    assert api_server.request("GET", f"/v1/agents/{reg.name}/tasks/424242", None, auth)[0] == 404
    assert api_server.request("GET", f"/v1/agents/{reg.name}/kv?key=x", None,
                              {"Authorization": f"Bearer {op_key}"})[0] == 401
    for path in ("/v1/status", "/metrics", "/v1/alerts?open=true"):
        assert api_server.request("GET", path, None, {"Authorization": f"Bearer {op_key}"})[0] == 200
        assert api_server.request("GET", path, None, auth)[0] == 401
    log = api_server.log()
    assert "/v1/agents/" in log and "/metrics" in log and "?***" in log
    secrets = {reg.token, op_key, private_key, hashlib.sha256(op_key.encode()).hexdigest(),
               hashlib.sha256(reg.token.encode()).hexdigest()}
    assert sorted(s for s in secrets if s in log) == [], "secrets in the API server's log"
