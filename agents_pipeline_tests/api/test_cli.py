"""`agents register` shows the ping URL, `agents ping-url` prints it again, `agents
rotate-ping-key` replaces it; the base is AGENTS_PIPELINE_API_URL."""

from __future__ import annotations

import json
import re

from agents_pipeline.cli.main import main
from agents_pipeline.core.connection import Database
from agents_pipeline_tests.api.conftest import query


def _key(db_url: str, name: str) -> str:
    db = Database(db_url, maxconn=1, retry_window=2)
    try:
        return query(db, "SELECT ping_key FROM fleet.agents WHERE name = %s", (name,))[0][0]
    finally:
        db.close()


def test_register_shows_the_ping_url_and_ping_url_prints_it(db_env, capsys, monkeypatch) -> None:
    monkeypatch.delenv("AGENTS_PIPELINE_API_URL", raising=False)
    assert main(["agents", "register", "nightly"]) == 0
    out = capsys.readouterr().out
    key = _key(db_env, "nightly")
    assert f"ping URL (`agents-pipeline agents ping-url nightly` shows it again): http://127.0.0.1:3001/ping/{key}" in out
    monkeypatch.setenv("AGENTS_PIPELINE_API_URL", "https://hb.example.net/agents/")
    assert main(["agents", "ping-url", "nightly"]) == 0
    assert capsys.readouterr().out == f"https://hb.example.net/agents/ping/{key}\n"
    assert main(["agents", "register", "json-agent", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ping_url"] == f"https://hb.example.net/agents/ping/{_key(db_env, 'json-agent')}"


def test_rotate_ping_key_and_revoke_token_replace_the_key(db_env, capsys) -> None:
    assert main(["agents", "register", "leaky"]) == 0
    first = _key(db_env, "leaky")
    capsys.readouterr()
    assert main(["agents", "rotate-ping-key", "leaky"]) == 0
    out = capsys.readouterr()
    second = _key(db_env, "leaky")
    assert second != first and out.out.strip().endswith(f"/ping/{second}")
    assert "old ping URL no longer works" in out.err
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", second)
    assert main(["agents", "revoke-token", "leaky"]) == 0
    assert _key(db_env, "leaky") not in (first, second)


def test_unknown_agent_is_one_line(db_env, capsys) -> None:
    for action in ("ping-url", "rotate-ping-key"):
        assert main(["agents", action, "ghost"]) == 2
        assert capsys.readouterr().err == "agents-pipeline: unknown agent 'ghost'\n"
