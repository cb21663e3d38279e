"""Every refusal the API gives, over real HTTP: 400, 401, 404, 408-free 413, 429, and that 401
and 404 answers never tell which agents exist."""

from __future__ import annotations

import http.client

from agents_pipeline.core import ping_keys
from agents_pipeline_tests.api.conftest import query


def same(a: tuple[int, dict[str, str], bytes], b: tuple[int, dict[str, str], bytes]) -> bool:
    """Status, headers (but the date) and body equal."""
    def strip(r):
        return r[0], {k: v for k, v in r[1].items() if k != "date"}, r[2]

    return strip(a) == strip(b)


def test_unknown_rotated_and_malformed_keys_get_the_same_404_as_no_route(api_server, operator_db, new_agent) -> None:
    reg = new_agent("rotated")
    old = reg.ping_key
    new = ping_keys.rotate_ping_key(operator_db, reg.name)
    assert new != old and ping_keys.ping_key(operator_db, reg.name) == new
    answers = [api_server.request("GET", f"/ping/{old}"),
               api_server.request("GET", f"/ping/{'A' * 43}"),
               api_server.request("POST", f"/ping/{old}/fail", b"x"),
               api_server.request("GET", "/ping/short"),
               api_server.request("GET", "/no/such/route")]
    assert answers[0][0] == 404 and all(same(answers[0], a) for a in answers[1:]), answers
    assert api_server.request("GET", f"/ping/{new}")[0] == 200
    assert query(operator_db, "SELECT heartbeat_count FROM fleet.agents WHERE name = %s", (reg.name,)) == [(1,)]


def test_unknown_agent_wrong_token_and_no_token_get_the_same_401(api_server, new_agent) -> None:
    alpha, bravo = new_agent("alpha"), new_agent("bravo")
    body = b'{"heartbeats": [{}]}'
    answers = [
        api_server.request("POST", f"/v1/agents/{alpha.name}/heartbeats", body, {"Authorization": "Bearer apt_wrong"}),
        api_server.request("POST", "/v1/agents/no-such-agent/heartbeats", body, {"Authorization": f"Bearer {alpha.token}"}),
        api_server.request("POST", f"/v1/agents/{alpha.name}/heartbeats", body, {"Authorization": f"Bearer {bravo.token}"}),
        api_server.request("POST", f"/v1/agents/{alpha.name}/heartbeats", body),
        api_server.request("POST", f"/v1/agents/{alpha.name}/heartbeats", body, {"Authorization": f"Basic {alpha.token}"}),
    ]
    assert answers[0][0] == 401 and answers[0][1]["www-authenticate"].startswith("Bearer")
    assert all(same(answers[0], a) for a in answers[1:]), answers


def test_a_body_over_the_limit_is_refused_before_it_is_read(api_server, new_agent) -> None:
    """413 from Content-Length alone, and from a chunked body as soon as it passes the limit."""
    reg = new_agent("huge")
    too_big = b"x" * 100_001
    status, _, body = api_server.request("POST", f"/ping/{reg.ping_key}", too_big)
    assert status == 413 and b"larger than 100000 bytes" in body
    conn = http.client.HTTPConnection("127.0.0.1", api_server.port, timeout=10)
    try:
        conn.request("POST", f"/ping/{reg.ping_key}", body=iter([b"y" * 60_000] * 2), encode_chunked=True)
        assert conn.getresponse().status == 413
    finally:
        conn.close()
    status, _, _ = api_server.request("POST", f"/v1/agents/{reg.name}/heartbeats", b" " * (1024 * 1024 + 1),
                                      {"Authorization": f"Bearer {reg.token}"})
    assert status == 413
    assert api_server.request("GET", f"/ping/{reg.ping_key}")[0] == 200    # nothing stuck behind them


def test_throttled_pings_and_batches_get_429_with_retry_after(api_server, operator_db, new_agent) -> None:
    reg = new_agent("flood")
    query(operator_db, """INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst)
                          VALUES (%s, 'heartbeats', 0.2, 2) RETURNING 1""", (reg.agent_id,))
    url = f"/ping/{reg.ping_key}"
    assert [api_server.request("GET", url)[0] for _ in range(2)] == [200, 200]
    status, headers, body = api_server.request("GET", url)
    assert status == 429 and body == b"rate limited: too many pings for this agent\n"
    assert 1 <= int(headers["retry-after"]) <= 5
    status, headers, doc = api_server.post_json(f"/v1/agents/{reg.name}/heartbeats", {"heartbeats": [{}]}, reg.token)
    assert status == 429 and 1 <= int(headers["retry-after"]) <= 5
    assert doc["stored"] == 0 and doc["results"][0]["error"] == "rate limited: heartbeats"
    refused = query(operator_db, "SELECT refused_total FROM fleet.rate_buckets WHERE agent_id = %s AND kind = 'heartbeats'",
                    (reg.agent_id,))
    assert refused == [(2,)]


def test_an_unknown_signal_or_exit_status_is_named(api_server, new_agent) -> None:
    reg = new_agent("signals")
    for tail in ("restart", "256", "-1", "1.5"):
        status, _, body = api_server.request("GET", f"/ping/{reg.ping_key}/{tail}")
        assert status == 400 and body.startswith(b"unknown ping signal"), tail
    assert api_server.request("DELETE", f"/ping/{reg.ping_key}")[0] == 405


def test_the_fast_path_and_the_starlette_route_answer_alike(api_server, operator_db, new_agent) -> None:
    """Guards against the two ways a ping is served drifting apart: a GET without a body takes
    PingFastPath (api/pings.py), the same ping with a body Starlette's route; every outcome
    (stored, unknown signal, unknown key, malformed key) must read the same from both."""
    reg = new_agent("twin")
    cases = [f"/ping/{reg.ping_key}", f"/ping/{reg.ping_key}/bogus", f"/ping/{'A' * 43}", "/ping/short",
             f"/ping/{reg.ping_key}/3"]
    for path in cases:
        fast = api_server.request("GET", path)
        routed = api_server.request("POST", path, b"m")
        assert same(fast, routed), (path, fast, routed)
    # a trailing slash is not the fast path's: Starlette redirects it to the ping URL, storing nothing
    status, headers, _ = api_server.request("GET", f"/ping/{reg.ping_key}/")
    assert status == 307 and headers["location"].endswith(f"/ping/{reg.ping_key}")
    assert api_server.request("HEAD", f"/ping/{reg.ping_key}")[0] == 200
    assert query(operator_db, "SELECT heartbeat_count FROM fleet.agents WHERE name = %s", (reg.name,)) == [(5,)]
