"""Known secret values in the environment; every job of the code location run; nothing Dagster
stores or shows (event logs, asset metadata, run config, resource config, instance info) and
nothing logged holds any of them."""


import json
import logging
import secrets
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from agents_pipeline.core import settings
from agents_pipeline.core.dsn import connect_kwargs, make_url
from agents_pipeline.core.localdb import LocalCluster
from agents_pipeline.platform.instance_env import dagster_storage_env
from agents_pipeline_tests import pg
from agents_pipeline_tests.security import secret_scan


class _Refuse(BaseHTTPRequestHandler):
    """Stands in for LangSmith, the webhook receiver and an LLM endpoint: refuses everything."""

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({"detail": "forbidden"}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PATCH = do_PUT = _reply

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def stub_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refuse)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def secret_env(db_url, pg_cluster: LocalCluster, stub_server, monkeypatch, tmp_path) -> Iterator[dict[str, str]]:
    """Every secret the product reads, set to a known random value, and a Dagster instance
    configured as in production (the project's dagster.yaml, storage in PostgreSQL).
    Yields what to look for: a description of each secret and its value."""
    from agents_pipeline.definitions import defs

    hidden: dict[str, str] = {}

    def secret(what: str) -> str:
        hidden[what] = f"{what.replace(' ', '-')}-{secrets.token_hex(8)}"
        return hidden[what]

    kwargs = connect_kwargs(db_url)
    host, port = str(kwargs["host"]), int(kwargs["port"])
    # The socket trusts, so the passwords are not needed to connect: they only have to stay hidden.
    app_url = make_url(str(kwargs["dbname"]), user="postgres", host=host, port=port,
                       password=secret("database password"))
    dagster_db = pg.fresh_database(pg_cluster, "template0")
    env = {
        settings.DATABASE_URL: app_url,
        "AGENTS_PIPELINE_DAGSTER_DATABASE_URL": make_url(dagster_db, user="postgres", host=host, port=port,
                                                         password=secret("dagster database password")),
        "LANGSMITH_API_KEY": secret("LANGSMITH_API_KEY"),
        "LANGSMITH_ENDPOINT": stub_server,
        "AGENTS_PIPELINE_SMTP_HOST": "127.0.0.1",
        "AGENTS_PIPELINE_SMTP_PORT": "1",
        "AGENTS_PIPELINE_SMTP_USER": "alerts",
        "AGENTS_PIPELINE_SMTP_PASSWORD": secret("AGENTS_PIPELINE_SMTP_PASSWORD"),
        "AGENTS_PIPELINE_ALERT_EMAIL_TO": "ops@example.com",
        "AGENTS_PIPELINE_ALERT_WEBHOOK_URL": f"{stub_server}/hook/{secret('webhook path token')}",
        "AGENTS_PIPELINE_ALERT_WEBHOOK_TOKEN": secret("AGENTS_PIPELINE_ALERT_WEBHOOK_TOKEN"),
        "AGENTS_PIPELINE_WEBHOOK_TOKEN": secret("AGENTS_PIPELINE_WEBHOOK_TOKEN"),
        "AGENTS_PIPELINE_LLM_URL": f"{stub_server}/v1",
        "AGENTS_PIPELINE_LLM_API_KEY": secret("AGENTS_PIPELINE_LLM_API_KEY"),
        "OPENAI_API_KEY": secret("OPENAI_API_KEY"),
    }
    # Secrets other domains add later through dg.EnvVar on their resources.
    for name in sorted(secret_scan.env_vars_of_resources(defs)):
        if name not in env and any(part in name.upper() for part in secret_scan.SECRETISH):
            env[name] = f"{stub_server}/{secret(name)}" if name.upper().endswith("_URL") else secret(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(settings.PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for name, value in dagster_storage_env(app_url).items():
        monkeypatch.setenv(name, value)
    yield hidden
    pg.drop_database(pg_cluster, dagster_db)


def _leaks(texts, secret_values: dict[str, str]) -> list[str]:
    return [f"{label} holds {what}" for label, text in texts for what, value in secret_values.items()
            if value in text]


def _graphql_texts(instance: dg.DagsterInstance, run_ids: list[str]) -> tuple[list[tuple[str, str]], dict]:
    """What the webserver's API shows, from the workspace as `dagster dev` loads it (a code
    server process started with this environment)."""
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import WorkspaceFileTarget
    from dagster_graphql.test.utils import execute_dagster_graphql

    out = []
    target = WorkspaceFileTarget(paths=[str(settings.PROJECT_DIR / "workspace.yaml")])
    with WorkspaceProcessContext(instance, target) as process:
        context = process.create_request_context()
        location = execute_dagster_graphql(context, secret_scan.LOCATION_QUERY).data
        out.append(("graphql location", json.dumps(location)))
        for run_id in run_ids:
            data = execute_dagster_graphql(context, secret_scan.RUN_QUERY, {"runId": run_id}).data
            # The API really showed the run, its config and its events (an empty answer scans clean).
            assert data["runOrError"]["__typename"] == "Run" and data["runOrError"]["runConfigYaml"]
            assert data["logsForRun"]["__typename"] == "EventConnection" and data["logsForRun"]["events"]
            out.append((f"graphql run {run_id}", json.dumps(data)))
    return out, location


def test_no_secret_reaches_dagster_or_the_logs(secret_env, caplog, capfd):
    from agents_pipeline.definitions import defs

    caplog.set_level(logging.DEBUG)
    instance = dg.DagsterInstance.get()
    try:
        runs = secret_scan.run_all(defs, instance)
        assert runs, "the code location has no job or asset to run"
        run_ids = [r.run_id for r in runs]
        texts = list(secret_scan.instance_texts(instance, run_ids))
        graphql, location = _graphql_texts(instance, run_ids)
        texts += graphql
        captured = capfd.readouterr()
        texts += [("python logging", caplog.text), ("stdout", captured.out), ("stderr", captured.err)]
        assert _leaks(texts, secret_env) == []

        # The scan saw what it should: the runs' events and the resource shown by its variable name.
        assert sum(1 for label, _ in texts if label.startswith("event ")) >= len(runs) * 3
        repo = location["workspaceOrError"]["locationEntries"][0]["locationOrLoadError"]
        assert repo["__typename"] == "RepositoryLocation", repo
        postgres = next(r for r in repo["repositories"][0]["allTopLevelResourceDetails"] if r["name"] == "postgres")
        url_value = next(v for v in postgres["configuredValues"] if v["key"] == "url")
        assert url_value == {"key": "url", "value": settings.DATABASE_URL, "type": "ENV_VAR"}
    finally:
        instance.dispose()


def test_the_scan_finds_a_planted_leak(secret_env):
    """The scanner itself: a job that puts a secret in run config and in a log is caught."""

    @dg.op(config_schema={"password": str})
    def leaky(context: dg.OpExecutionContext) -> None:
        context.log.info(f"connecting with {context.op_config['password']}")

    @dg.job
    def leaky_job():
        leaky()

    secret = secret_env["AGENTS_PIPELINE_SMTP_PASSWORD"]
    with dg.instance_for_test() as instance:
        result = leaky_job.execute_in_process(run_config={"ops": {"leaky": {"config": {"password": secret}}}},
                                              instance=instance)
        texts = list(secret_scan.instance_texts(instance, [result.run_id]))
    leaks = _leaks(texts, {"smtp": secret})
    assert any(label.startswith("run ") for label in leaks)
    assert any("event" in label for label in leaks)


def test_example_config_satisfies_required_fields():
    class Question(dg.Config):
        question: str
        limit: int = 5
        agent: str | None = None

    @dg.op
    def ask(config: Question) -> None:
        assert config.question == "secret-scan"

    @dg.job
    def ask_job():
        ask()

    config = secret_scan.example_config(ask_job.run_config_schema.config_type)
    assert config == {"ops": {"ask": {"config": {"question": "secret-scan"}}}}
    assert ask_job.execute_in_process(run_config=config).success


def test_env_vars_of_resources_finds_nested_env_vars():
    class Client(dg.ConfigurableResource):
        api_key: str
        endpoint: str = "http://localhost"

    class Outer(dg.ConfigurableResource):
        client: Client
        token: str

    defs = dg.Definitions(resources={"outer": Outer(client=Client(api_key=dg.EnvVar("X_API_KEY")),
                                                    token=dg.EnvVar("X_TOKEN"))})
    assert secret_scan.env_vars_of_resources(defs) == {"X_API_KEY", "X_TOKEN"}


def test_no_job_takes_a_secret_as_run_config():
    """Run config is shown in full by the UI: no job of the code location may ask for a
    password, token or key there (resources read them through dg.EnvVar instead)."""
    from agents_pipeline.definitions import defs

    offenders = {label: list(secret_scan.secret_config_fields(job.run_config_schema.config_type))
                 for label, job in secret_scan.plan(defs).jobs}
    assert {label: paths for label, paths in offenders.items() if paths} == {}


def test_no_resource_holds_a_secret_as_a_plain_value():
    from agents_pipeline.definitions import defs

    assert secret_scan.plain_secret_resource_fields(defs) == []


def test_the_static_checks_find_planted_secrets():
    class Mailer(dg.ConfigurableResource):
        host: str
        smtp_password: str

    @dg.op(config_schema={"api_token": str, "nested": {"db_password": str}})
    def leaky_op() -> None:
        pass

    @dg.job
    def leaky_job():
        leaky_op()

    found = set(secret_scan.secret_config_fields(leaky_job.run_config_schema.config_type))
    assert {"ops.leaky_op.config.api_token", "ops.leaky_op.config.nested.db_password"} <= found
    planted = dg.Definitions(resources={"mail": Mailer(host="h", smtp_password="hunter2"),
                                        "ok": Mailer(host="h", smtp_password=dg.EnvVar("SMTP_PASSWORD"))})
    assert secret_scan.plain_secret_resource_fields(planted) == ["mail.smtp_password"]
