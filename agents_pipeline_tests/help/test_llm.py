"""The LLM path against a local OpenAI-compatible server started here, and its fallbacks."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.defs.help import service
from agents_pipeline.defs.help.llm import LLMSettings
from agents_pipeline_tests.help.conftest import add_agent, run_sql
from agents_pipeline_tests.run_errors import failure_text

SECRET = "sk-test-0123456789abcdef"
LLM_TEXT = "demo is down since the time in [1]; follow the first checks in [3]."


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "ok"
        self.seen: list[dict] = []
        self.redirect: tuple[int, str] | None = None   # answer (status, Location) to every POST

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, *, trickle: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for i in range(0, len(body), 1 if trickle else len(body) or 1):
            self.wfile.write(body[i:i + (1 if trickle else len(body))])
            self.wfile.flush()
            if trickle:
                time.sleep(0.2)

    def do_GET(self) -> None:  # where urllib sends a POST it followed a 301-303 with
        self.server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "method": "GET"})
        self._send(200, b"{}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = json.loads(self.rfile.read(length))
        self.server.seen.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.server.redirect is not None:
            self.send_response(self.server.redirect[0])
            self.send_header("Location", self.server.redirect[1])
            self.send_header("Content-Length", "0")
            return self.end_headers()
        mode = self.server.mode
        if self.path != "/v1/chat/completions":
            return self._send(404, b'{"error": "not found"}')
        reply = {"id": "x", "object": "chat.completion", "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": LLM_TEXT}}],
                 "usage": {"prompt_tokens": 321, "completion_tokens": 23, "total_tokens": 344}}
        if mode == "slow":
            time.sleep(3)
        if mode == "malformed":
            return self._send(200, b'{"choices": [{"message": ')
        if mode == "no_text":
            reply["choices"][0]["message"]["content"] = None
        if mode == "nonsense":
            reply["choices"][0]["message"]["content"] = "\u2591\u2592 1234 \u2593 {} [] 0101 ###"
        if mode == "error":
            return self._send(500, b'{"error": "overloaded"}')
        return self._send(200, json.dumps(reply).encode(), trickle=mode == "trickle")


@contextmanager
def running_fake() -> Iterator[FakeOpenAI]:
    server = FakeOpenAI()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def openai_server() -> Iterator[FakeOpenAI]:
    with running_fake() as server:
        yield server


@pytest.fixture
def other_server() -> Iterator[FakeOpenAI]:
    """A second endpoint: where a redirect or a run-config override would send the key."""
    with running_fake() as server:
        yield server


@pytest.fixture
def demo(database, knowledge):
    return add_agent(database, "demo", "down", since="10 minutes", message="no heartbeat")


def settings(server: FakeOpenAI, timeout: float = 5.0) -> LLMSettings:
    return LLMSettings(url=server.url, model="help-model", api_key=SECRET, timeout_s=timeout)


def test_llm_answer_uses_context_and_is_logged(database, demo, openai_server):
    request_id, result = service.ask(database, "why is demo down?", llm=settings(openai_server))
    assert result.mode == "llm" and result.model == "help-model"
    assert result.text.startswith(LLM_TEXT) and "Sources:\n  [1] fleet.agents agent_id=" in result.text
    call = openai_server.seen[0]
    assert call["auth"] == f"Bearer {SECRET}" and call["body"]["model"] == "help-model"
    user = call["body"]["messages"][1]["content"]
    assert "Question: why is demo down?" in user and "demo is DOWN since" in user
    assert "(docs, docs/runbooks/agent-down.md > An agent is down" in user
    conv = run_sql(database, """SELECT model, prompt_tokens, completion_tokens, total_tokens, error, prompt, response
                                FROM fleet.llm_conversations""")
    assert conv[0][:5] == ["help-model", 321, 23, 344, None] and conv[0][6] == result.text
    assert SECRET not in conv[0][5] and SECRET not in result.text
    assert run_sql(database, "SELECT answer_mode FROM fleet.help_requests WHERE request_id = %s",
                   (request_id,))[0][0] == "llm"


@pytest.mark.parametrize(("mode", "reason"), [
    ("slow", "the LLM endpoint did not answer within 0.8 s"),
    ("trickle", "the LLM endpoint did not answer within 0.8 s"),
    ("malformed", "the LLM reply is not JSON"),
    ("no_text", "the LLM reply has no message text"),
    ("nonsense", "the LLM reply is empty or not prose"),
    ("error", "the LLM endpoint answered HTTP 500"),
])
def test_misbehaving_llm_falls_back_to_extractive(database, demo, openai_server, mode, reason):
    openai_server.mode = mode
    started = time.monotonic()
    _, result = service.ask(database, "why is demo down?", llm=settings(openai_server, timeout=0.8))
    assert time.monotonic() - started < 2.5                      # the deadline is for the whole call
    assert result.mode == "extractive-fallback"
    assert result.text.startswith(f"Note: {reason}; this answer was assembled")
    assert "demo is DOWN since" in result.text and "From the documentation:" in result.text
    error = run_sql(database, "SELECT error FROM fleet.llm_conversations")[0][0]
    assert error == reason


def test_unreachable_llm_and_bad_settings(database, demo, openai_server):
    port = openai_server.server_address[1]
    openai_server.shutdown()
    openai_server.server_close()
    dead = LLMSettings(url=f"http://127.0.0.1:{port}/v1", model="m", timeout_s=2)
    _, result = service.ask(database, "why is demo down?", llm=dead)
    assert result.mode == "extractive-fallback" and "the LLM endpoint is unreachable" in result.text
    assert LLMSettings.from_env({}) is None
    with pytest.raises(ConfigurationError, match="MODEL"):
        LLMSettings.from_env({"AGENTS_PIPELINE_HELP_LLM_URL": "http://x/v1"})
    with pytest.raises(ConfigurationError, match="http"):
        LLMSettings.from_env({"AGENTS_PIPELINE_HELP_LLM_URL": "file:///etc/passwd", "AGENTS_PIPELINE_HELP_LLM_MODEL": "m"})
    with pytest.raises(ConfigurationError, match="TIMEOUT"):
        LLMSettings.from_env({"AGENTS_PIPELINE_HELP_LLM_URL": "http://x", "AGENTS_PIPELINE_HELP_LLM_MODEL": "m",
                              "AGENTS_PIPELINE_HELP_LLM_TIMEOUT_S": "soon"})
    assert SECRET not in repr(LLMSettings(url="http://x", model="m", api_key=SECRET))


def test_sensor_answers_through_the_llm_configured_in_the_environment(db_env, database, demo, openai_server,
                                                                      monkeypatch):
    """The Dagster path reads URL, model and key through dg.EnvVar; the key reaches the endpoint
    and nowhere else."""
    import dagster as dg

    from agents_pipeline.defs.help import request_store
    from agents_pipeline.defs.help.resources import help_llm_resource
    from agents_pipeline.defs.help.sensors import help_requests_sensor
    from agents_pipeline.platform.resources import PostgresResource

    monkeypatch.setenv("AGENTS_PIPELINE_HELP_LLM_URL", openai_server.url)
    monkeypatch.setenv("AGENTS_PIPELINE_HELP_LLM_MODEL", "help-model")
    monkeypatch.setenv("AGENTS_PIPELINE_HELP_LLM_API_KEY", SECRET)
    rid = request_store.submit(database, "why is demo down?")
    resources = {"postgres": PostgresResource(url=db_env), "help_llm": help_llm_resource()}
    with dg.build_sensor_context(resources=resources) as ctx:
        tick = help_requests_sensor(ctx)
    meta = tick.asset_events[0].metadata
    assert meta["answered_now"].value == 1 and SECRET not in str(meta)
    row = request_store.get(database, rid)
    assert row["answer_mode"] == "llm" and row["answer"].startswith(LLM_TEXT)
    assert openai_server.seen[-1]["auth"] == f"Bearer {SECRET}"


@pytest.mark.parametrize("status", [302, 307])
def test_redirect_never_carries_the_key_to_another_host(database, demo, openai_server, other_server, status):
    """Regression: urllib followed a 302 from the LLM endpoint as a GET to the Location and sent
    the Authorization header with it, handing the API key to whatever host the reply named."""
    openai_server.redirect = (status, f"{other_server.url}/chat/completions")
    _, result = service.ask(database, "why is demo down?", llm=settings(openai_server))
    assert other_server.seen == []
    assert [call["path"] for call in openai_server.seen] == ["/v1/chat/completions"]
    reason = (f"the LLM endpoint answered HTTP {status} (a redirect), which is not followed so that the API "
              "key stays with the configured host; set AGENTS_PIPELINE_HELP_LLM_URL to the final URL")
    assert result.mode == "extractive-fallback" and result.text.startswith(f"Note: {reason};")
    assert run_sql(database, "SELECT error FROM fleet.llm_conversations")[0][0] == reason


def test_plain_http_endpoint_off_loopback_is_refused_before_any_connection(database, demo):
    """Regression: an http:// endpoint on another host got the bearer token in clear text. The
    refusal names the variable and the host, never the URL's credentials or query."""
    env = {"AGENTS_PIPELINE_HELP_LLM_URL": "http://user:pw-77@example.invalid/v1?key=q-secret",
           "AGENTS_PIPELINE_HELP_LLM_MODEL": "m", "AGENTS_PIPELINE_HELP_LLM_API_KEY": SECRET}
    with pytest.raises(ConfigurationError) as refused:
        LLMSettings.from_env(env)
    message = str(refused.value)
    assert message.startswith("AGENTS_PIPELINE_HELP_LLM_URL uses plain http:// to 'example.invalid'")
    assert "AGENTS_PIPELINE_ALLOW_PLAIN_HTTP=1" in message
    assert not any(s in message for s in ("pw-77", "q-secret", SECRET))
    allowed = LLMSettings.from_env({**env, "AGENTS_PIPELINE_ALLOW_PLAIN_HTTP": "1"})
    assert allowed is not None and allowed.allow_plain_http
    assert LLMSettings.from_env({**env, "AGENTS_PIPELINE_HELP_LLM_URL": "https://example.invalid/v1"}) is not None
    # Settings made without from_env are checked again before the call: no lookup, no connection.
    direct = LLMSettings(url="http://example.invalid/v1", model="m", api_key=SECRET, timeout_s=2)
    _, result = service.ask(database, "why is demo down?", llm=direct)
    assert result.mode == "extractive-fallback"
    assert result.text.startswith("Note: AGENTS_PIPELINE_HELP_LLM_URL uses plain http:// to 'example.invalid'")


@pytest.mark.parametrize("override", [
    {"url": "OTHER"},
    {"api_key": {"env": "LANGSMITH_API_KEY"}},
])
def test_run_config_cannot_send_the_key_elsewhere(db_env, database, demo, openai_server, other_server,
                                                  monkeypatch, override):
    """Regression: help_answers materialized from the Launchpad with resources.help_llm.config.url
    set to another host sent it the key read from {env: ...}; or another variable's secret
    (api_key: {env: LANGSMITH_API_KEY}) went to the configured endpoint."""
    import dagster as dg

    from agents_pipeline.defs.help import request_store
    from agents_pipeline.defs.help.assets import help_answers
    from agents_pipeline.defs.help.resources import help_llm_resource
    from agents_pipeline.platform.resources import PostgresResource

    monkeypatch.setenv("AGENTS_PIPELINE_HELP_LLM_URL", openai_server.url)
    monkeypatch.setenv("AGENTS_PIPELINE_HELP_LLM_MODEL", "help-model")
    monkeypatch.setenv("AGENTS_PIPELINE_HELP_LLM_API_KEY", SECRET)
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-other-secret")
    config = {k: other_server.url if v == "OTHER" else v for k, v in override.items()}
    request_store.submit(database, "why is demo down?")
    resources = {"postgres": PostgresResource(url=db_env), "help_llm": help_llm_resource()}
    result = dg.materialize([help_answers], resources=resources, instance=dg.DagsterInstance.ephemeral(),
                            run_config={"resources": {"help_llm": {"config": config}}}, raise_on_error=False)
    assert not result.success
    message = failure_text(result)
    field, variable = next(iter(override)), {"url": "AGENTS_PIPELINE_HELP_LLM_URL",
                                             "api_key": "AGENTS_PIPELINE_HELP_LLM_API_KEY"}[next(iter(override))]
    assert f"resource 'help_llm': {field} differs from the environment variable {variable}" in message
    assert SECRET not in message and "lsv2-other-secret" not in message
    assert other_server.seen == [] and openai_server.seen == []
    # Without the override the same asset answers through the environment's endpoint.
    assert dg.materialize([help_answers], resources=resources, instance=dg.DagsterInstance.ephemeral()).success
    assert [c["auth"] for c in openai_server.seen] == [f"Bearer {SECRET}"] and other_server.seen == []


def test_llm_not_configured_cannot_be_configured_from_run_config(db_env, database, demo, other_server, monkeypatch):
    """Regression: with no LLM in the environment, run config could still supply url, model and
    api_key: {env: ANY_SECRET}, sending any secret of the process to any host."""
    import dagster as dg

    from agents_pipeline.defs.help import request_store
    from agents_pipeline.defs.help.assets import help_answers
    from agents_pipeline.defs.help.resources import help_llm_resource
    from agents_pipeline.platform.resources import PostgresResource

    for var in ("URL", "MODEL", "API_KEY", "TIMEOUT_S"):
        monkeypatch.delenv(f"AGENTS_PIPELINE_HELP_LLM_{var}", raising=False)
    monkeypatch.setenv("LANGSMITH_API_KEY", "lsv2-other-secret")
    request_store.submit(database, "why is demo down?")
    config = {"url": other_server.url, "model": "m", "api_key": {"env": "LANGSMITH_API_KEY"}}
    result = dg.materialize([help_answers], instance=dg.DagsterInstance.ephemeral(), raise_on_error=False,
                            resources={"postgres": PostgresResource(url=db_env), "help_llm": help_llm_resource()},
                            run_config={"resources": {"help_llm": {"config": config}}})
    assert not result.success and other_server.seen == []
