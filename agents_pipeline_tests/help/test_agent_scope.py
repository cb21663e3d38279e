"""Agents read only their own data (issue #16): an agent's help request is answered from the docs
and that agent's own live facts, whatever other agents it names; operators still see the fleet."""

from __future__ import annotations

import pytest

from agents_pipeline.core import registry
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.defs.help import answer as answers
from agents_pipeline.defs.help import request_store, service
from agents_pipeline.defs.help.answer import AGENT_SYSTEM_PROMPT, SCOPE_NOTE, SYSTEM_PROMPT
from agents_pipeline.defs.help.request_store import HelpRequest, facts_scope
from agents_pipeline_tests.help.conftest import run_sql
from agents_pipeline_tests.help.test_llm import running_fake, settings

BRAVO_MESSAGE = "bravo-status-7f3: payroll disk /srv/payroll full"
BRAVO_ALERT = "bravo-alert-7f3 payroll export stuck"
BRAVO_RUN_ERROR = "bravo-run-7f3 ContextWindowExceeded on payroll.csv"
BRAVO_CONV_ERROR = "bravo-conv-7f3 RateLimitError for tenant 42"
BRAVO_TEXTS = (BRAVO_MESSAGE, BRAVO_ALERT, BRAVO_RUN_ERROR, BRAVO_CONV_ERROR, "bravo is DOWN")
ALPHA_MESSAGE = "alpha-status-2c1: waiting for the queue"
ALPHA_RUN_ERROR = "alpha-run-2c1 Timeout talking to the model"


@pytest.fixture
def fleet(database, knowledge) -> dict:
    """alpha (late, one LLM error) and bravo (down, open alert, LLM errors), both registered with tokens."""
    tokens = {name: registry.register_agent(database, name).token for name in ("alpha", "bravo")}
    ids = dict(run_sql(database, "SELECT name, agent_id FROM fleet.agents WHERE name IN ('alpha', 'bravo')"))
    run_sql(database, """UPDATE fleet.agents SET status = 'late', status_since = now() - interval '2 minutes',
                             status_message = %s WHERE agent_id = %s""", (ALPHA_MESSAGE, ids["alpha"]))
    run_sql(database, """UPDATE fleet.agents SET status = 'down', status_since = now() - interval '30 minutes',
                             status_message = %s WHERE agent_id = %s""", (BRAVO_MESSAGE, ids["bravo"]))
    alert = run_sql(database, """INSERT INTO fleet.alerts (alert_key, kind, severity, agent_id, subject, opened_at)
                                 VALUES ('agent_down:' || %s, 'agent_down', 'critical', %s, %s,
                                         now() - interval '30 minutes') RETURNING alert_id""",
                    (ids["bravo"], ids["bravo"], BRAVO_ALERT))[0][0]
    runs = {}
    for name, error in (("bravo", BRAVO_RUN_ERROR), ("alpha", ALPHA_RUN_ERROR)):
        runs[name] = run_sql(database, """INSERT INTO fleet.llm_runs (run_id, project, agent_id, start_time, model, error)
                                          VALUES (gen_random_uuid(), 'p', %s, now() - interval '1 hour', 'gpt-x', %s)
                                          RETURNING run_id::text""", (ids[name], error))[0][0]
    conv = run_sql(database, """INSERT INTO fleet.llm_conversations (agent_id, run_id, model, error)
                                VALUES (%s, gen_random_uuid(), 'gpt-x', %s) RETURNING conversation_pk""",
                   (ids["bravo"], BRAVO_CONV_ERROR))[0][0]
    bravo_rows = {("fleet.agents", f"agent_id={ids['bravo']}"), ("fleet.alerts", f"alert_id={alert}"),
                  ("fleet.llm_runs", f"run_id={runs['bravo']}"),
                  ("fleet.llm_conversations", f"conversation_pk={conv}")}
    alpha_rows = {("fleet.agents", f"agent_id={ids['alpha']}"), ("fleet.llm_runs", f"run_id={runs['alpha']}")}
    return {"tokens": tokens, "ids": ids, "bravo_rows": bravo_rows, "alpha_rows": alpha_rows}


def as_agent(db_url: str, fleet: dict, name: str) -> SharedState:
    return SharedState(db_url, agent=name, token=fleet["tokens"][name], retry_window=5)


def table_rows(sources: list[dict]) -> set[tuple[str, str]]:
    return {(s["table"], s["row"]) for s in sources if s["type"] == "table"}


def test_agent_asking_about_another_agent_reads_none_of_its_facts(db_url, database, fleet):
    """Regression (issue #16): alpha asked "why is bravo down?" with {"agent": "bravo"} and read
    back bravo's status message, open alert and LLM errors, with bravo's rows as sources."""
    with as_agent(db_url, fleet, "alpha") as alpha:
        rid = alpha.submit_help_request("why is bravo down?", context={"agent": "bravo"})
        assert service.drain(database, "w").answered == [rid]
        got = alpha.get_help_request(rid)
    assert got["status"] == "answered"
    for text in BRAVO_TEXTS:
        assert text not in got["answer"]
    assert not table_rows(got["sources"]) & fleet["bravo_rows"]
    assert table_rows(got["sources"]) <= fleet["alpha_rows"]
    assert SCOPE_NOTE in got["answer"]
    assert any(s["type"] == "doc" for s in got["sources"])               # the docs still answer
    meta = run_sql(database, "SELECT metadata FROM fleet.llm_conversations WHERE conversation_id = %s",
                   (f"help-request-{rid}",))[0][0]
    assert meta["agents"] == ["alpha"] and meta["facts"] == "own"


def test_agent_asking_about_the_fleet_gets_no_fleet_overview(db_url, database, fleet):
    """Guards against the fleet overview (counts, every agent down or late, by name) reaching an
    agent: it must stay out for an agent's request even when no own facts are there to push it out."""
    with as_agent(db_url, fleet, "bravo") as bravo:
        rid = bravo.submit_help_request("which agents are down right now?")
        service.drain(database, "w")
        got = bravo.get_help_request(rid)
    assert "Fleet:" not in got["answer"] and "alpha" not in got["answer"]
    assert not table_rows(got["sources"]) & fleet["alpha_rows"]
    assert ("fleet.agents", "count by status") not in table_rows(got["sources"])
    empty = answers.answer(database, "which agents are down right now?", only_agents=[])
    assert "Fleet:" not in empty.text and not table_rows(empty.sources)
    assert "Fleet: 1 down, 1 late." in answers.answer(database, "which agents are down right now?").text


def test_agent_asking_about_itself_gets_its_own_facts(db_url, database, fleet):
    """Guards against over-correcting: the scope must keep the asking agent's own facts."""
    with as_agent(db_url, fleet, "alpha") as alpha:
        rid = alpha.submit_help_request("why am I late?")
        service.drain(database, "w")
        got = alpha.get_help_request(rid)
    assert "alpha is LATE since" in got["answer"] and ALPHA_MESSAGE in got["answer"]
    assert ALPHA_RUN_ERROR in got["answer"]
    assert table_rows(got["sources"]) == fleet["alpha_rows"]


def test_operator_asking_the_same_question_still_sees_the_other_agent(database, fleet):
    """Guards against the scope reaching operators: the CLI and queued operator requests keep
    the named agent's facts."""
    _, result = service.ask(database, "why is bravo down?", requested_by="cli:ops")
    for text in BRAVO_TEXTS:
        assert text in result.text
    assert fleet["bravo_rows"] <= table_rows(result.sources) and SCOPE_NOTE not in result.text
    rid = request_store.submit(database, "why is it down?", agent="bravo")
    service.drain(database, "w")
    assert BRAVO_ALERT in request_store.get(database, rid)["answer"]
    fleet_wide = request_store.submit(database, "which agents are down right now?", requested_by="launchpad:1")
    service.drain(database, "w")
    assert "bravo is DOWN since" in request_store.get(database, fleet_wide)["answer"]


def test_llm_prompt_of_an_agent_request_holds_only_its_own_facts(db_url, database, fleet):
    """Regression (issue #16): the LLM's prompt for an agent's request carried the facts of the
    agents it named, so the model could repeat them in the answer the agent reads."""
    with running_fake() as server, as_agent(db_url, fleet, "alpha") as alpha:
        rid = alpha.submit_help_request("why is bravo down?", context={"agents": ["bravo"]})
        service.drain(database, "w", llm=settings(server))
        got = alpha.get_help_request(rid)
        _, operator = service.ask(database, "why is bravo down?", llm=settings(server))
    system, user = (m["content"] for m in server.seen[0]["body"]["messages"])
    assert system == AGENT_SYSTEM_PROMPT and "alpha is LATE since" in user
    for text in BRAVO_TEXTS:
        assert text not in user and text not in got["answer"]
    stored = run_sql(database, "SELECT prompt FROM fleet.llm_conversations WHERE conversation_id = %s",
                     (f"help-request-{rid}",))[0][0]
    assert not any(text in stored for text in BRAVO_TEXTS)
    system, user = (m["content"] for m in server.seen[1]["body"]["messages"])
    assert system == SYSTEM_PROMPT and BRAVO_MESSAGE in user and operator.mode == "llm"


@pytest.mark.parametrize(("agent", "requested_by", "scope"), [
    ("alpha", "alpha", {7}),               # what fleet.submit_help_request writes
    ("cli:x", "cli:x", {7}),               # an agent whose name looks like an operator channel
    ("alpha", "old-alpha", {7}),           # renamed since it asked: narrower, not wider
    ("alpha", None, {7}),
    ("alpha", "operator", None),           # request_store.submit's default
    ("alpha", "cli:ops", None),            # agents-pipeline ask --agent alpha
    ("alpha", "launchpad:1a2b3c4d", None),  # help_request_job
    (None, "alpha", None),                 # no agent: only operators write these
])
def test_facts_scope_rule(agent, requested_by, scope):
    """The rule in one table: which requests are an agent's own (its facts only)."""
    request = HelpRequest(1, "q", agent, {}, 1, agent_id=7 if agent else None, requested_by=requested_by)
    assert facts_scope(request) == (frozenset(scope) if scope is not None else None)
