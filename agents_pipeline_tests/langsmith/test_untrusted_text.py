"""Text from LangSmith (agent and model names of runs, error answers) shows as text in the UI."""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from agents_pipeline.defs.langsmith.assets import llm_usage_daily, sync_metadata
from agents_pipeline.defs.langsmith.sync import ProjectResult
from agents_pipeline.platform.markdown import ZERO_WIDTH_SPACE
from agents_pipeline.platform.resources import PostgresResource
from agents_pipeline_tests.markdown_oracle import live_markup, table_rows

AGENT = "[docs](http://evil.example) a|b"
MODEL = "![m](http://evil.example/m.png)"


def _plain(cell: str) -> str:
    return cell.replace(ZERO_WIDTH_SPACE, "")


def test_run_names_in_the_usage_table_cannot_add_links_or_images(db_url, engine):
    """Regression (issue #16): agent and model names of pulled runs went into the usage table as
    they were, so whoever logs runs to the project could show operators links and images. The
    table is a MetadataValue.table now, whose cells the UI renders as text (ui-core's
    TableMetadataEntryComponent: ``record[column.name]?.toString()`` in a <td>)."""
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO fleet.llm_runs (run_id, project, agent_name, run_type, status, start_time, end_time, model,
                                        prompt_tokens, completion_tokens, total_cost)
            VALUES (gen_random_uuid(), 'p', :agent, 'llm', 'success', '2026-11-20 08:00+00', '2026-11-20 08:00:01+00',
                    :model, 10, 1, 0.001)"""), {"agent": AGENT, "model": MODEL})
    result = dg.materialize([llm_usage_daily], partition_key="2026-11-20",
                            resources={"postgres": PostgresResource(url=db_url)}, instance=dg.DagsterInstance.ephemeral())
    meta = result.asset_materializations_for_node("llm_usage_daily")[0].metadata
    table = meta["by_agent_and_model"]
    assert isinstance(table, dg.TableMetadataValue)
    (row,) = [dict(r.data) for r in table.records]
    assert (row["agent"], row["model"], row["runs"]) == (AGENT, MODEL, 1)
    assert meta["dagster/row_count"].value == 1


def test_project_errors_in_the_sync_table_cannot_add_links_or_images():
    error = "HTTP 502: <img src=x> [retry](http://evil.example) contact ops@evil.example"
    results = [ProjectResult(project="[p](www.evil.example)", error=error), ProjectResult(project="ok", ok=True)]
    table = sync_metadata(results, {})["by_project"].value
    assert live_markup(table) == []
    rows = table_rows(table)
    assert [_plain(r[0]) for r in rows] == ["[p](www.evil.example)", "ok"] and _plain(rows[0][-1]) == error
