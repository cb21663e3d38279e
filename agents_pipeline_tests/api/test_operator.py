"""The operator endpoints over real HTTP: GET /v1/status, /v1/alerts and /metrics behind an
operator API key made by `agents-pipeline api-key create`, and the design that keeps the API's
login from doing operator work on its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import psycopg2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from agents_pipeline.core import api_keys, registry
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.roles import roles
from agents_pipeline_tests.api.conftest import query
from agents_pipeline_tests.security.conftest import role_url


def cli(api_db: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": api_db}
    return subprocess.run([sys.executable, "-m", "agents_pipeline.cli.main", *args], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def operator_key(operator_db) -> str:
    return api_keys.create_api_key(operator_db, f"ops-{uuid.uuid4().hex[:8]}")


def get(server, path: str, key: str | None) -> tuple[int, dict[str, str], bytes]:
    return server.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})


def test_api_key_create_list_and_revoke_from_the_command_line(api_server, api_db) -> None:
    name = f"cli-{uuid.uuid4().hex[:8]}"
    made = cli(api_db, "api-key", "create", name, "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)["key"]
    assert key.startswith("apk_") and get(api_server, "/v1/status", key)[0] == 200
    again = cli(api_db, "api-key", "create", name)
    assert again.returncode == 2 and f"a live API key named {name!r} exists" in again.stderr
    listed = json.loads(cli(api_db, "api-key", "list", "--json").stdout)["api_keys"]
    mine = [k for k in listed if k["name"] == name]
    assert len(mine) == 1 and mine[0]["last_used_at"] is not None and mine[0]["revoked_at"] is None
    assert key not in json.dumps(listed)
    assert cli(api_db, "api-key", "revoke", name).returncode == 0
    assert get(api_server, "/v1/status", key)[0] == 401
    gone = cli(api_db, "api-key", "revoke", name)
    assert gone.returncode == 2 and "no live API key" in gone.stderr
    assert cli(api_db, "api-key", "create", "bad name!").returncode == 2


def test_status_is_what_status_json_shows(api_server, operator_db, operator_key, new_agent) -> None:
    reg = new_agent("watched")
    assert api_server.request("GET", f"/ping/{reg.ping_key}")[0] == 200
    status, head, body = get(api_server, "/v1/status", operator_key)
    assert status == 200 and head["content-type"] == "application/json"
    doc = json.loads(body)
    listed = {row["name"]: row for row in registry.list_agents(operator_db)}
    mine = next(a for a in doc["agents"] if a["name"] == reg.name)
    expected = listed[reg.name]
    for column in ("agent_id", "status", "heartbeat_count", "last_kind", "period_s", "grace_s", "has_token", "host"):
        assert mine[column] == expected[column], column
    assert set(expected) <= set(mine) and {"last_heartbeat", "since", "seconds_since_heartbeat"} <= set(mine)
    assert 0 <= mine["seconds_since_heartbeat"] < 60 and mine["last_heartbeat"].endswith("ago")
    assert [a["name"] for a in doc["agents"]] == sorted(listed)


def test_alerts_list_open_ones_first(api_server, operator_db, operator_key, new_agent) -> None:
    reg = new_agent("alerted")
    subject = f"test alert {uuid.uuid4().hex[:6]}"
    query(operator_db, """INSERT INTO fleet.alerts (alert_key, agent_id, kind, severity, subject, message)
                          VALUES (%s, %s, 'agent_down', 'critical', %s, 'it stopped') RETURNING alert_id""",
          (f"agent_down:{reg.agent_id}", reg.agent_id, subject))
    status, _, body = get(api_server, "/v1/alerts?open=true&limit=1000", operator_key)
    alerts = json.loads(body)["alerts"]
    assert status == 200 and all(a["resolved_at"] is None for a in alerts)
    mine = next(a for a in alerts if a["subject"] == subject)
    assert (mine["agent"], mine["kind"], mine["severity"], mine["message"]) == (reg.name, "agent_down", "critical",
                                                                                  "it stopped")
    assert get(api_server, "/v1/alerts?limit=0", operator_key)[0] == 400
    assert json.loads(get(api_server, "/v1/alerts?limit=x", operator_key)[2])["error"].startswith("open must be")


def test_metrics_parse_as_prometheus_text(api_server, operator_db, operator_key, new_agent) -> None:
    quiet, pinged = new_agent("quiet"), new_agent("pinged")
    assert api_server.request("GET", f"/ping/{pinged.ping_key}")[0] == 200
    assert api_server.request("GET", f"/ping/{'Z' * 43}")[0] == 404
    status, head, body = get(api_server, "/metrics", operator_key)
    assert status == 200 and head["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = {(f.name, s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    statuses = {a["name"]: a["status"] for a in registry.list_agents(operator_db)}
    for status_name in ("new", "up", "late", "down", "paused"):
        assert samples[("agents_pipeline_agents", "agents_pipeline_agents", (("status", status_name),))] == \
            sum(s == status_name for s in statuses.values())
    for agent in (quiet, pinged):
        for status_name in ("new", "up", "late", "down", "paused"):
            key = ("agents_pipeline_agent_status", "agents_pipeline_agent_status",
                   (("agent", agent.name), ("status", status_name)))
            assert samples[key] == (1.0 if statuses[agent.name] == status_name else 0.0)
    since = families["agents_pipeline_agent_seconds_since_heartbeat"]
    seconds = {s.labels["agent"]: s.value for s in since.samples}
    assert 0 <= seconds[pinged.name] < 60 and seconds[quiet.name] != seconds[quiet.name]    # NaN: never heard
    open_alerts = query(operator_db, "SELECT count(*) FROM fleet.alerts WHERE resolved_at IS NULL")[0][0]
    assert samples[("agents_pipeline_alerts_open", "agents_pipeline_alerts_open", ())] == open_alerts
    assert families["agents_pipeline_api_heartbeats"].type == "counter"
    assert samples[("agents_pipeline_api_heartbeats", "agents_pipeline_api_heartbeats_total",
                    (("path", "ping"),))] >= 1
    assert samples[("agents_pipeline_api_refusals", "agents_pipeline_api_refusals_total", (("status", "404"),))] >= 1


def test_operator_routes_answer_every_wrong_credential_alike(api_server, operator_db, new_agent) -> None:
    reg = new_agent("not-an-operator")
    name = f"revoked-{uuid.uuid4().hex[:6]}"
    revoked = api_keys.create_api_key(operator_db, name)
    api_keys.revoke_api_key(operator_db, name)
    for path in ("/v1/status", "/v1/alerts", "/metrics"):
        answers = [get(api_server, path, key) for key in (None, "apk_wrong", revoked, reg.token, reg.ping_key)]
        assert {(a[0], a[2]) for a in answers} == {(401, b'{"error":"unauthorized: operator API key refused"}')}, path


def test_the_api_login_reads_nothing_without_a_key(api_db, pg_cluster, operator_key) -> None:
    """Guards against the operator functions becoming a back door: the API's login may call them,
    but without a live key's proof they refuse, and it cannot call the key check or read keys."""
    conn = psycopg2.connect(**connect_kwargs(role_url(api_db, pg_cluster, roles().api)))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement, params in (("SELECT fleet.api_status(%s)", (b"\0" * 32,)),
                                      ("SELECT fleet.api_alerts(%s, true, 10)", (None,)),
                                      ("SELECT fleet.operator_key_valid(%s)", (api_keys.key_proof(operator_key),)),
                                      ("SELECT count(*) FROM fleet.api_keys", ())):
                with pytest.raises(psycopg2.Error) as refused:
                    cur.execute(statement, params)
                assert refused.value.pgcode in ("28P01", "42501"), statement
            cur.execute("SELECT jsonb_typeof(fleet.api_status(%s) -> 'agents')", (api_keys.key_proof(operator_key),))
            assert cur.fetchone() == ("array",)
    finally:
        conn.close()
