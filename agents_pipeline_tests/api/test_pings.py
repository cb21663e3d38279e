"""Ping URLs over real HTTP, sent with curl as a cron job or a shell script would."""

from __future__ import annotations

import subprocess
import time

from agents_pipeline.core import ping_keys
from agents_pipeline.core.validation import MAX_MESSAGE
from agents_pipeline_tests.api.conftest import query


def curl(*args: str) -> tuple[int, str]:
    """curl's exit code and the body; -f makes an HTTP error a non-zero exit, as in a crontab."""
    done = subprocess.run(["curl", "-fsS", "-m", "10", *args], capture_output=True, text=True)
    return done.returncode, done.stdout


def beats(db, name: str) -> list[tuple]:
    return query(db, """SELECT h.kind, h.message, h.payload FROM fleet.heartbeats h
                        JOIN fleet.agents a USING (agent_id) WHERE a.name = %s ORDER BY h.received_at, h.kind""",
                 (name,))


def agent_row(db, name: str) -> tuple:
    return query(db, """SELECT last_kind, last_message, run_started_at IS NOT NULL, last_fail_at IS NOT NULL,
                               heartbeat_count FROM fleet.agents WHERE name = %s""", (name,))[0]


def test_a_ping_records_a_success(api_server, operator_db, new_agent) -> None:
    reg = new_agent("cron")
    code, out = curl(ping_keys.ping_url(reg.ping_key, api_server.base))
    assert (code, out) == (0, "OK\n")
    assert beats(operator_db, reg.name) == [("ok", None, None)]
    assert agent_row(operator_db, reg.name) == ("ok", None, False, False, 1)


def test_start_then_fail_with_an_exit_status(api_server, operator_db, new_agent) -> None:
    reg = new_agent("job")
    url = ping_keys.ping_url(reg.ping_key, api_server.base)
    assert curl(f"{url}/start") == (0, "OK\n")
    assert agent_row(operator_db, reg.name)[:3] == ("start", None, True)
    assert curl("--data-binary", "disk full", f"{url}/3") == (0, "OK\n")
    assert beats(operator_db, reg.name) == [("start", None, None), ("fail", "disk full", {"exit_status": 3})]
    assert agent_row(operator_db, reg.name) == ("fail", "disk full", False, True, 2)
    assert curl(f"{url}/0") == (0, "OK\n")                       # exit status 0 is a success
    assert agent_row(operator_db, reg.name)[0] == "ok"
    assert curl("-X", "POST", f"{url}/fail") == (0, "OK\n")
    assert agent_row(operator_db, reg.name)[0] == "fail"


def test_log_is_stored_without_changing_the_status(api_server, operator_db, new_agent) -> None:
    reg = new_agent("logger")
    url = ping_keys.ping_url(reg.ping_key, api_server.base)
    assert curl("--data-binary", "first", url) == (0, "OK\n")
    assert curl("--data-binary", "step 2 of 5", f"{url}/log") == (0, "OK\n")
    assert beats(operator_db, reg.name) == [("ok", "first", None), ("log", "step 2 of 5", None)]
    assert agent_row(operator_db, reg.name) == ("ok", "first", False, False, 1)


def test_the_body_becomes_the_message_verbatim(api_server, operator_db, new_agent, tmp_path) -> None:
    """UTF-8, newlines, quotes and SQL-looking text arrive as sent; a NUL (which PostgreSQL text
    cannot hold) and invalid UTF-8 become U+FFFD instead of failing the ping."""
    reg = new_agent("body")
    body = tmp_path / "body.txt"
    body.write_bytes("résumé ✓\nline 2 'quoted' ; DROP TABLE x; --\n".encode() + b"nul\x00 bad\xff end")
    assert curl("--data-binary", f"@{body}", ping_keys.ping_url(reg.ping_key, api_server.base)) == (0, "OK\n")
    assert beats(operator_db, reg.name) == [
        ("ok", "résumé ✓\nline 2 'quoted' ; DROP TABLE x; --\nnul\ufffd bad\ufffd end", None)]


def test_a_body_over_the_cap_is_cut_at_a_character_and_marked(api_server, operator_db, new_agent, tmp_path) -> None:
    """The cap holds in bytes for the HTTP path as for the SQL path: the stored message, marker
    included, is at most MAX_MESSAGE bytes, ends on a whole character and says how much came."""
    reg = new_agent("chatty")
    body = tmp_path / "big.txt"
    sent = ("é" * 7000 + "x" * 20000).encode()           # 34,000 bytes, 2-byte characters first
    body.write_bytes(sent)
    assert curl("--data-binary", f"@{body}", ping_keys.ping_url(reg.ping_key, api_server.base)) == (0, "OK\n")
    [(kind, message, payload)] = beats(operator_db, reg.name)
    marker = f"… [cut: {len(sent)} bytes received]"
    assert kind == "ok" and message.endswith(marker)
    assert len(message.encode()) <= MAX_MESSAGE and len(message.encode()) >= MAX_MESSAGE - 1
    assert set(message[: -len(marker)]) == {"é"}
    assert payload == {"cut": True, "body_bytes": len(sent)}
    assert query(operator_db, "SELECT fleet.heartbeat_message_cap()") == [(MAX_MESSAGE,)]


def test_get_and_post_and_head_all_ping(api_server, operator_db, new_agent) -> None:
    reg = new_agent("methods")
    url = ping_keys.ping_url(reg.ping_key, api_server.base)
    assert curl(url)[0] == 0 and curl("-X", "POST", url)[0] == 0
    assert subprocess.run(["curl", "-fsS", "-m", "10", "-I", url], capture_output=True).returncode == 0
    assert agent_row(operator_db, reg.name)[4] == 3


def test_two_worker_processes_share_the_port_and_stop_together(api_db, pg_cluster, operator_db, new_agent,
                                                                tmp_path) -> None:
    """`agents-pipeline api --workers 2`: both processes serve the same port (each with its own
    writers), and SIGTERM to the command stops them all."""
    from agents_pipeline.core.roles import roles
    from agents_pipeline_tests.api.server import start
    from agents_pipeline_tests.security.conftest import role_url

    reg = new_agent("two-workers")
    server = start(role_url(api_db, pg_cluster, roles().api), tmp_path / "workers.log", args=("--workers", "2"))
    try:
        assert [server.request("GET", f"/ping/{reg.ping_key}")[0] for _ in range(20)] == [200] * 20
        assert agent_row(operator_db, reg.name)[4] == 20
        deadline = time.monotonic() + 15
        while server.log().count("agent API ready") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.log().count("agent API ready") == 2
    finally:
        server.stop()
    assert server.proc.returncode == 0
    left = subprocess.run(["pgrep", "-f", f"--port {server.port}"], capture_output=True, text=True).stdout
    assert left.split() == []
