"""The LangSmith client's outbound rules against the local LangSmith: no redirects (the key is in
x-api-key, which requests carries across hosts), HTTPS off loopback, and key and endpoint from
the environment only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import pytest

from agents_pipeline.core.registry import register_agent
from agents_pipeline.defs.langsmith import assets
from agents_pipeline.defs.langsmith.client import close_client, make_client
from agents_pipeline.defs.langsmith.resources import LangSmithResource, langsmith_resource
from agents_pipeline.platform.outbound import ALLOW_PLAIN_HTTP, InsecureEndpointError
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.langsmith.conftest import PROJECT
from agents_pipeline_tests.langsmith.fake_langsmith import FakeLangSmith
from agents_pipeline_tests.langsmith.test_push import _conversations, _push
from agents_pipeline_tests.run_errors import failure_text


@pytest.fixture
def catcher(fake: FakeLangSmith) -> Iterator[FakeLangSmith]:
    """A second LangSmith that accepts the same key: where a followed redirect would land."""
    server = FakeLangSmith(api_key=fake.api_key).start()
    yield server
    server.stop()


@pytest.mark.parametrize("status", [302, 307, 308])
def test_sync_redirect_never_carries_the_key_to_another_host(fake, catcher, syncer, now, status):
    """Regression: requests followed a redirect from LangSmith (307/308 with method and body) and
    sent x-api-key along, since it strips only Authorization on a change of host."""
    fake.add_run(PROJECT, start_time=now - timedelta(minutes=3), end_time=now - timedelta(minutes=2))
    for method, path in (("GET", "/sessions"), ("POST", "/runs/query")):
        fake.fail(method, path, status, times=100, headers={"Location": f"{catcher.url}{path}"})
    result = syncer(now)
    assert not result.ok
    assert catcher.requests == []
    assert f"LangSmith answered HTTP {status} (a redirect)" in result.error
    assert "set LANGSMITH_ENDPOINT to the final URL" in result.error and fake.api_key not in result.error
    assert syncer.retry_counts == {}                           # refused at once, not retried


def test_push_redirect_never_carries_the_key_to_another_host(fake, catcher, engine, database, state):
    """The ingest path (multipart POST, errors through the client's callback) refuses redirects too."""
    register_agent(database, "writer")
    state.record_conversation("hi", "hello", agent="writer")
    for path in ("/runs/multipart", "/runs"):
        fake.fail("POST", path, 307, times=100, headers={"Location": f"{catcher.url}{path}"})
    result = _push(fake, engine)
    assert result.sent == 0 and catcher.requests == []
    (row,) = _conversations(engine)
    assert row["langsmith_sent_at"] is None and "LangSmith answered HTTP 307 (a redirect)" in row["push_error"]


def test_plain_http_endpoint_off_loopback_is_refused_before_any_connection(monkeypatch):
    """Regression: an http:// LANGSMITH_ENDPOINT on another host got the API key in clear text."""
    monkeypatch.delenv(ALLOW_PLAIN_HTTP, raising=False)
    with pytest.raises(InsecureEndpointError) as refused:
        make_client(api_key="lsv2-key-0123456789", endpoint="http://proxy:pw-9@example.invalid/api?x=q-secret")
    message = str(refused.value)
    assert message.startswith("LANGSMITH_ENDPOINT uses plain http:// to 'example.invalid', which is not loopback")
    assert f"{ALLOW_PLAIN_HTTP}=1" in message
    assert not any(s in message for s in ("pw-9", "q-secret", "lsv2-key"))
    monkeypatch.setenv(ALLOW_PLAIN_HTTP, "1")
    client, _ = make_client(api_key="lsv2-key-0123456789", endpoint="http://example.invalid/api")
    close_client(client)                                       # made, not connected: the client is lazy


@pytest.mark.parametrize("field", ["endpoint", "api_key"])
def test_run_config_cannot_send_the_key_elsewhere(fake, catcher, db_url, monkeypatch, field):
    """Regression: langsmith_runs launched with resources.langsmith.config.endpoint set to another
    host sent it the key read from {env: LANGSMITH_API_KEY}; an api_key override is refused too."""
    monkeypatch.setenv("LANGSMITH_API_KEY", fake.api_key)
    monkeypatch.setenv("LANGSMITH_ENDPOINT", fake.url)
    monkeypatch.setenv("LANGSMITH_PROJECTS", PROJECT)
    monkeypatch.setenv("AGENTS_PIPELINE_SMTP_PASSWORD", "smtp-pw-0123456789")
    override = {"endpoint": catcher.url} if field == "endpoint" else {"api_key": {"env": "AGENTS_PIPELINE_SMTP_PASSWORD"}}
    resources = {"postgres": PostgresResource(url=db_url), "langsmith": langsmith_resource()}
    result = dg.materialize([assets.langsmith_runs], resources=resources, instance=dg.DagsterInstance.ephemeral(),
                            run_config={"resources": {"langsmith": {"config": override}}}, raise_on_error=False)
    assert not result.success
    variable = {"endpoint": "LANGSMITH_ENDPOINT", "api_key": "LANGSMITH_API_KEY"}[field]
    text = failure_text(result)
    assert f"resource 'langsmith': {field} differs from the environment variable {variable}" in text
    assert fake.api_key not in text and "smtp-pw" not in text
    assert catcher.requests == [] and fake.requests == []
    ok = dg.materialize([assets.langsmith_runs], resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert ok.success and fake.requests and catcher.requests == []


def test_key_and_endpoint_are_read_from_the_environment_when_used(monkeypatch):
    monkeypatch.setenv("LANGSMITH_API_KEY", "k-1")
    monkeypatch.delenv("LANGSMITH_ENDPOINT", raising=False)
    resource = LangSmithResource(api_key="k-1")
    assert resource.credentials() == ("k-1", "https://api.smith.langchain.com")
    monkeypatch.setenv("LANGSMITH_API_KEY", "k-2")                     # rotated after the resource was built
    with pytest.raises(Exception, match="api_key differs from the environment variable LANGSMITH_API_KEY"):
        resource.credentials()
    assert LangSmithResource().credentials()[0] == "k-2"

