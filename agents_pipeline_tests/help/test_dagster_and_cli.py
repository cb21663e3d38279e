"""The help's Dagster face (assets, sensors, job) and the `ask` command."""

from __future__ import annotations

import json

import dagster as dg

from agents_pipeline.cli.main import main
from agents_pipeline.definitions import load_domain
from agents_pipeline.defs.help import request_store
from agents_pipeline.defs.help.assets import help_answers, knowledge_base
from agents_pipeline.defs.help.resources import HelpLLMResource, help_llm_resource
from agents_pipeline.defs.help.sensors import help_requests_sensor, knowledge_base_sensor
from agents_pipeline.platform.markdown import ZERO_WIDTH_SPACE
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.help.conftest import add_agent, run_sql
from agents_pipeline_tests.markdown_oracle import live_markup, table_rows


def resources(db_url: str) -> dict:
    return {"postgres": PostgresResource(url=db_url), "help_llm": HelpLLMResource()}


def with_postgres(url: str = "postgresql+psycopg2://u@127.0.0.1:1/x") -> dg.Definitions:
    """The domain's defs plus the resource the root definitions provide."""
    return dg.Definitions.merge(load_domain("help"), dg.Definitions(resources={"postgres": PostgresResource(url=url)}))


def test_definitions_snapshot(monkeypatch):
    defs = with_postgres()
    assert {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()} == {
        "knowledge_base", "help_answers"}
    assert {s.name: (s.minimum_interval_seconds, s.default_status) for s in defs.sensors} == {
        "knowledge_base_sensor": (60, dg.DefaultSensorStatus.RUNNING),
        "help_requests_sensor": (30, dg.DefaultSensorStatus.RUNNING)}
    assert [j.name for j in defs.jobs] == ["help_request_job"]
    assert [k.name for c in defs.asset_checks for k in c.check_keys] == ["knowledge_base_current"]
    for asset in (knowledge_base, help_answers):
        spec = next(iter(asset.specs))
        assert spec.group_name == "help" and spec.owners == ["team:agents-platform"] and spec.description
    monkeypatch.setenv("AGENTS_PIPELINE_HELP_LLM_API_KEY", "sk-secret")
    monkeypatch.delenv("AGENTS_PIPELINE_HELP_LLM_URL", raising=False)
    fields = help_llm_resource().__dict__
    assert "sk-secret" not in repr(fields) and "url" not in {k for k, v in fields.items() if v}


def test_assets_materialize_with_metadata(db_env, database):
    add_agent(database, "demo", "down")
    rid = request_store.submit(database, "why is demo down?")
    result = dg.materialize([knowledge_base, help_answers], resources=resources(db_env),
                            instance=dg.DagsterInstance.ephemeral())
    kb = result.asset_materializations_for_node("knowledge_base")[0].metadata
    assert kb["passages"].value > 40 and kb["documents"].value >= 7
    assert "docs/runbooks/agent-down.md" in kb["documents_table"].value
    meta = result.asset_materializations_for_node("help_answers")[0].metadata
    assert (meta["answered"].value, meta["pending"].value, meta["failed"].value, meta["answered_now"].value) == (1, 0, 0, 1)
    assert f"| {rid} |" in meta["latest_answers"].value and "why is demo down?" in meta["latest_answers"].value


def test_sensors_report_without_runs(db_env, database):
    def tick_of(sensor, cursor=None):
        with dg.build_sensor_context(resources=resources(db_env), cursor=cursor) as ctx:
            return sensor(ctx)

    first = tick_of(knowledge_base_sensor)
    assert isinstance(first, dg.SensorResult)
    assert first.asset_events[0].asset_key == knowledge_base.key
    assert first.asset_events[0].metadata["inserted"].value > 40
    assert isinstance(tick_of(knowledge_base_sensor), dg.SkipReason)

    add_agent(database, "demo", "down")
    rid = request_store.submit(database, "why is demo down?")
    tick = tick_of(help_requests_sensor)
    event = tick.asset_events[0]
    assert event.asset_key == help_answers.key
    assert (event.metadata["answered"].value, event.metadata["answered_now"].value, event.metadata["pending"].value) == (1, 1, 0)
    assert request_store.get(database, rid)["status"] == "answered"
    quiet = tick_of(help_requests_sensor, tick.cursor)
    assert isinstance(quiet, dg.SkipReason)
    me = run_sql(database, """SELECT agent_type, heartbeat_count, last_seen IS NOT NULL, paused FROM fleet.agents
                              WHERE name = 'agents-pipeline:help-requests-sensor'""")
    assert [tuple(r) for r in me] == [("pipeline", 2, True, False)]


def test_launchpad_job_queues_the_question(db_env, database):
    add_agent(database, "demo", "down")
    result = with_postgres(db_env).resolve_job_def("help_request_job").execute_in_process(
        run_config={"ops": {"ask_help": {"config": {"question": "why is demo down?", "agent": "demo", "wait_s": 0}}}},
        instance=dg.DagsterInstance.ephemeral())
    rid = result.output_for_node("ask_help")
    row = run_sql(database, """SELECT h.status, a.name, h.requested_by FROM fleet.help_requests h
                               JOIN fleet.agents a USING (agent_id) WHERE request_id = %s""", (rid,))[0]
    assert row[0] == "pending" and row[1] == "demo" and row[2].startswith("launchpad:")


def test_cli_ask_json_and_errors(db_env, database, capsys, monkeypatch):
    monkeypatch.delenv("AGENTS_PIPELINE_HELP_LLM_URL", raising=False)
    add_agent(database, "demo", "down", since="3 minutes")
    assert main(["ask", "why is demo down?", "--json"]) == 0          # loads the docs itself first
    out = json.loads(capsys.readouterr().out)
    assert out["mode"] == "extractive" and out["agents"] == ["demo"] and "demo is DOWN since" in out["answer"]
    assert any(s["type"] == "doc" and s["doc"] == "docs/runbooks/agent-down.md" for s in out["sources"])
    assert main(["ask", "why?", "--agent", "ghost"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["agents-pipeline: unknown agent 'ghost'"]
    assert main(["ask", "what does the grace period do?"]) == 0
    text = capsys.readouterr().out
    assert "How an agent's status is decided" in text and "Sources:" in text


def test_knowledge_base_check_fails_when_empty_or_stale(db_env, database, tmp_path, monkeypatch):
    from agents_pipeline.defs.help import knowledge
    from agents_pipeline.defs.help.checks import knowledge_base_current

    pg = PostgresResource(url=db_env)
    empty = knowledge_base_current(postgres=pg)
    assert not empty.passed and "empty" in empty.description
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\nalpha\n")
    monkeypatch.setenv("AGENTS_PIPELINE_HELP_DOCS", str(tmp_path))
    knowledge.refresh(database)
    assert knowledge_base_current(postgres=pg).passed
    (tmp_path / "docs" / "a.md").write_text("# A\nalpha, edited\n")
    stale = knowledge_base_current(postgres=pg)
    assert not stale.passed and "docs changed" in stale.description


def test_cli_ask_without_docs_uses_the_stored_knowledge(db_env, database, capsys, monkeypatch, knowledge):
    """Regression guard: an installed package without its docs must still answer."""
    monkeypatch.setenv("AGENTS_PIPELINE_HELP_DOCS", "/nonexistent/docs")
    assert main(["ask", "what does the grace period do?"]) == 0
    captured = capsys.readouterr()
    assert "How an agent's status is decided" in captured.out
    assert "warning: help documentation folder /nonexistent/docs does not exist" in captured.err


def test_questions_and_agent_names_cannot_add_links_or_images(db_env, database):
    """Regression (issue #16): questions, agent names and answers quoting them were pasted into the
    latest_answers table as they were, so an agent could show operators a link or an image."""
    name = "[x](http://evil.example) a|b"    # within the asker column's 30 characters
    add_agent(database, name, "down", message="![x](http://evil.example/t.png) ops@evil.example")
    question = "why is <img src=x> down? see www.evil.example | forged cell\n# heading"
    request_store.submit(database, question, agent=name, requested_by="[me](http://evil.example)")
    result = dg.materialize([help_answers], resources=resources(db_env), instance=dg.DagsterInstance.ephemeral())
    table = result.asset_materializations_for_node("help_answers")[0].metadata["latest_answers"].value
    assert live_markup(table) == []
    (row,) = table_rows(table)
    assert row[2].replace(ZERO_WIDTH_SPACE, "") == name
    assert row[3].replace(ZERO_WIDTH_SPACE, "") == " ".join(question.split())
