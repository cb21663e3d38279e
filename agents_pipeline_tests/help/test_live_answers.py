"""Answers about named agents quote their real, live state, with the rows as sources."""

from __future__ import annotations

import json

from agents_pipeline.defs.help import answer as answers
from agents_pipeline.defs.help import facts, service
from agents_pipeline_tests.help.conftest import add_agent, run_sql


def test_why_is_demo_down_names_status_time_runbook_and_sources(database, knowledge):
    demo = add_agent(database, "demo", "down", since="47 minutes", message="no heartbeat for 90 s")
    add_agent(database, "demo-2", "up")
    run_sql(database, """INSERT INTO fleet.status_changes (agent_id, from_status, to_status, changed_at, reason)
                         VALUES (%s, 'up', 'late', now() - interval '48 minutes', 'period passed'),
                                (%s, 'late', 'down', now() - interval '47 minutes', 'grace passed')""", (demo, demo))
    alert = run_sql(database, """INSERT INTO fleet.alerts (alert_key, kind, severity, agent_id, subject, opened_at)
                                 VALUES ('agent_down:' || %s, 'agent_down', 'critical', %s, 'demo is down',
                                         now() - interval '47 minutes') RETURNING alert_id""", (demo, demo))[0][0]
    since = run_sql(database, "SELECT to_char(status_since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') "
                              "FROM fleet.agents WHERE agent_id = %s", (demo,))[0][0]

    request_id, result = service.ask(database, "why is demo down?")
    assert result.mode == "extractive" and result.agents == ["demo"]      # not demo-2
    assert f"demo is DOWN since {since} UTC (47 min ago): no heartbeat for 90 s." in result.text
    assert "Status changed late -> down" in result.text and "Open critical alert agent_down" in result.text
    assert {"type": "table", "table": "fleet.agents", "row": f"agent_id={demo}"} in result.sources
    assert {"type": "table", "table": "fleet.alerts", "row": f"alert_id={alert}"} in result.sources
    # other domains' docs may share the top 3 after the merge; the runbook's first checks must be there
    docs = {(s["doc"], s["anchor"]) for s in result.sources if s["type"] == "doc"}
    assert ("docs/runbooks/agent-down.md", "first-checks") in docs
    assert "docs/runbooks/agent-down.md#first-checks" in result.text

    stored = run_sql(database, "SELECT status, answer, sources, answer_mode FROM fleet.help_requests "
                               "WHERE request_id = %s", (request_id,))[0]
    assert stored[0] == "answered" and stored[1] == result.text and stored[2] == result.sources
    conv = run_sql(database, """SELECT a.name, c.model, c.response, c.metadata FROM fleet.llm_conversations c
                                JOIN fleet.agents a USING (agent_id)""")
    assert len(conv) == 1 and conv[0][0] == facts.HELP_AGENT and conv[0][2] == result.text
    assert conv[0][3]["request_id"] == request_id
    helper = run_sql(database, "SELECT paused, status FROM fleet.agents WHERE name = %s", (facts.HELP_AGENT,))[0]
    assert tuple(helper) == (True, "paused")


def test_up_agent_and_extra_facts(database, knowledge):
    api = add_agent(database, "api-gateway", "up", since="2 hours")
    run_sql(database, """INSERT INTO fleet.perf_rollups (hour, host, agent_id, metric, samples, min_value,
                             mean_value, p50_value, p95_value, max_value)
                         VALUES (date_trunc('hour', now()) - interval '1 hour', 'h1', %s, 'cpu_percent', 60,
                                 1, 42.5, 40, 91.25, 99)""", (api,))
    run_sql(database, """INSERT INTO fleet.llm_runs (run_id, project, agent_id, start_time, model, error)
                         VALUES (gen_random_uuid(), 'p', %s, now() - interval '1 hour', 'gpt-x',
                                 'RateLimitError: slow down')""", (api,))
    result = answers.answer(database, "how is API-Gateway doing?")
    assert "api-gateway is UP since" in result.text
    assert "cpu_percent mean 42.5 p95 91.25 max 99" in result.text
    assert "LLM error at" in result.text and "RateLimitError: slow down" in result.text
    tables = {s["table"] for s in result.sources if s["type"] == "table"}
    assert tables == {"fleet.agents", "fleet.perf_rollups", "fleet.llm_runs"}


def test_request_agent_is_carried_and_unknown_words_are_not_agents(database, knowledge):
    add_agent(database, "late-bot", "late", since="20 seconds")
    add_agent(database, "is", "down")                   # a name that is also an English word
    result = answers.answer(database, "what should I check?", ["late-bot"])
    assert result.agents == ["late-bot"] and "late-bot is LATE since" in result.text
    # "is" matches as a whole word and is reported; "demo" in "demonstration" does not match
    add_agent(database, "demo", "down")
    assert answers.answer(database, "a demonstration question").agents == []


def test_fleet_question_lists_troubled_agents(database, knowledge):
    add_agent(database, "a1", "down")
    add_agent(database, "a2", "up")
    add_agent(database, "a3", "late")
    result = answers.answer(database, "which agents are down right now?")
    assert "Fleet: 1 down, 1 late, 1 up." in result.text
    assert "a1 is DOWN since" in result.text and "a3 is LATE since" in result.text


def test_nothing_found_says_so(database):
    result = answers.answer(database, "zebra quantum marmalade")
    assert result.sources == [] and "Nothing in the documentation or the live state" in result.text
    assert json.loads(json.dumps(result.as_dict()))["mode"] == "extractive"
