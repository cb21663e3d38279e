"""Daily usage per agent and model over pulled runs and local conversations."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from agents_pipeline.defs.langsmith import stats

DAY = date(2026, 11, 20)


def _seed(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO fleet.agents (name) VALUES ('writer'), ('reviewer')"))
        conn.execute(sa.text("""
            INSERT INTO fleet.llm_runs (run_id, project, agent_id, agent_name, run_type, status, start_time, end_time,
                                        model, prompt_tokens, completion_tokens, total_tokens, total_cost, error)
            SELECT gen_random_uuid(), 'p', (SELECT agent_id FROM fleet.agents WHERE name = 'writer'), 'writer', 'llm',
                   CASE WHEN i = 10 THEN 'error' ELSE 'success' END,
                   timestamptz '2026-11-20 12:00:00+00' + i * interval '1 minute',
                   timestamptz '2026-11-20 12:00:00+00' + i * interval '1 minute' + i * interval '100 milliseconds',
                   'gpt-4o', 100, 10, 110, 0.001, CASE WHEN i = 10 THEN 'boom' END
            FROM generate_series(1, 10) AS i"""))
        # a chain (not counted: its tokens are its children's), a run of another day, an unattributed run
        conn.execute(sa.text("""
            INSERT INTO fleet.llm_runs (run_id, project, agent_name, run_type, status, start_time, end_time, model,
                                        prompt_tokens, completion_tokens, total_cost) VALUES
            (gen_random_uuid(), 'p', 'writer', 'chain', 'success', '2026-11-20 12:00+00', '2026-11-20 13:00+00', NULL, 1000, 100, 0.01),
            (gen_random_uuid(), 'p', 'writer', 'llm', 'success', '2026-11-20 23:59:59.999+00', '2026-11-21 00:00:01+00', 'gpt-4o', 1, 1, 0),
            (gen_random_uuid(), 'p', NULL, 'llm', 'success', '2026-11-21 00:00:00+00', '2026-11-21 00:00:01+00', 'gpt-4o', 5, 5, 0),
            ('33333333-3333-4333-8333-333333333333', 'agents-pipeline', 'reviewer', 'llm', 'success',
             '2026-11-20 08:00:00+00', '2026-11-20 08:00:02+00', 'claude', 40, 4, 0.004)"""))
        # local conversations: one came back from LangSmith (same run id: counted once), one did not
        conn.execute(sa.text("""
            INSERT INTO fleet.llm_conversations (agent_id, run_id, model, prompt, response, prompt_tokens,
                                                 completion_tokens, cost, latency_ms, created_at) VALUES
            ((SELECT agent_id FROM fleet.agents WHERE name = 'reviewer'), '33333333-3333-4333-8333-333333333333',
             'claude', 'q', 'a', 40, 4, 0.004, 2000, '2026-11-20 08:00:02+00'),
            ((SELECT agent_id FROM fleet.agents WHERE name = 'reviewer'), gen_random_uuid(),
             'claude', 'q2', NULL, 60, 0, 0.006, 4000, '2026-11-20 09:00:00+00')"""))
        conn.execute(sa.text("UPDATE fleet.llm_conversations SET error = 'timeout' WHERE prompt = 'q2'"))


def test_day_counts_each_call_once_per_agent_and_model(engine):
    _seed(engine)
    usage = stats.refresh_day(engine, DAY)
    groups = {(g["agent"], g["model"]): g for g in usage.groups}
    assert set(groups) == {("writer", "gpt-4o"), ("reviewer", "claude")}
    writer, reviewer = groups[("writer", "gpt-4o")], groups[("reviewer", "claude")]
    assert (writer["runs"], writer["errors"], writer["prompt_tokens"], writer["completion_tokens"]) == (11, 1, 1001, 101)
    assert float(writer["total_cost"]) == 0.01
    assert (reviewer["runs"], reviewer["errors"], reviewer["from_langsmith"], reviewer["from_local"]) == (2, 1, 1, 1)
    assert (reviewer["prompt_tokens"], float(reviewer["total_cost"])) == (100, 0.01)
    assert (reviewer["latency_p50_ms"], reviewer["latency_p95_ms"]) == (3000.0, 3900.0)
    meta = usage.metadata()
    assert (meta["runs"], meta["errors"], meta["error_rate"]) == (13, 2, round(2 / 13, 4))
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["cost_usd"]) == (1101, 105, 0.02)
    assert meta["agents"] == 2 and meta["models"] == 2
    assert "| writer | gpt-4o | 11 | 1 | 9.1% | 1001 | 101 | 0.0100 |" in usage.markdown()
    with engine.begin() as conn:
        stored = conn.execute(sa.text("SELECT agent, model, runs FROM fleet.llm_usage_daily WHERE day = :d ORDER BY agent"),
                              {"d": DAY}).all()
    assert [tuple(r) for r in stored] == [("reviewer", "claude", 2), ("writer", "gpt-4o", 11)]
    again = stats.refresh_day(engine, DAY)
    assert again.digest == usage.digest


def test_empty_day_reports_zeros(engine):
    usage = stats.refresh_day(engine, date(2026, 1, 1))
    assert usage.groups == [] and usage.metadata()["runs"] == 0 and usage.metadata()["error_rate"] == 0.0
    assert usage.markdown() == "No LLM calls on 2026-01-01."
