"""The help's Dagster face: the knowledge base and the answered requests as assets."""

import dagster as dg

from agents_pipeline.core.connection import Database
from agents_pipeline.defs.help import knowledge, request_store, service
from agents_pipeline.defs.help.resources import HelpLLMResource
from agents_pipeline.platform.markdown import escape_md
from agents_pipeline.platform.resources import PostgresResource

GROUP = "help"
OWNERS = ["team:agents-platform"]


def _cell(text: object, limit: int) -> str:
    """Questions and answers are agent (and LLM) text: escaped so they cannot add links or images."""
    return escape_md(text or "", limit=limit)


def knowledge_metadata(report: knowledge.SyncReport | None, db: Database) -> dict:
    summary = knowledge.knowledge_summary(db)["documents"]
    table = "| document | passages |\n|---|---|\n" + "\n".join(
        f"| {_cell(d['doc_path'], 80)} | {d['passages']} |" for d in summary)
    meta = {
        "passages": sum(d["passages"] for d in summary),
        "documents": len(summary),
        "documents_table": dg.MetadataValue.md(table),
    }
    if report is not None:
        meta.update({"inserted": report.inserted, "deleted": report.deleted,
                     "corpus_hash": report.corpus_hash, "source": report.source})
    return meta


def answers_metadata(db: Database, drained: service.DrainReport | None = None) -> dict:
    counts = request_store.counts(db)
    rows = request_store.latest_answers(db, limit=10)
    table = "| id | answered at (UTC) | asked by | question | mode | sources | answer |\n|---|---|---|---|---|---|---|\n"
    table += "\n".join(
        f"| {r['request_id']} | {r['answered_at']:%Y-%m-%d %H:%M:%S} | {_cell(r['agent'] or r['requested_by'], 30)} "
        f"| {_cell(r['question'], 80)} | {r['answer_mode'] or ''} | {r['sources']} | {_cell(r['answer'], 160)} |"
        for r in rows) or "| | | | no answered requests yet | | | |"
    meta = {
        "pending": counts["pending"], "claimed": counts["claimed"],
        "answered": counts["answered"], "failed": counts["failed"],
        "latest_answers": dg.MetadataValue.md(table),
    }
    if drained is not None:
        meta.update({"answered_now": len(drained.answered), "failed_now": len(drained.failed),
                     "released_now": len(drained.released)})
    return meta


@dg.asset(
    group_name=GROUP, owners=OWNERS, kinds={"postgres"},
    description="README.md, docs/**/*.md and the runbooks split by markdown section into "
                "fleet.knowledge_passages (full-text indexed). Reloaded by knowledge_base_sensor "
                "whenever the docs' content hash differs from the database's.",
)
def knowledge_base(context: dg.AssetExecutionContext, postgres: PostgresResource) -> dg.MaterializeResult:
    db = postgres.database()
    try:
        report = knowledge.refresh(db, force=True)
        context.log.info("knowledge base: %s passages, %s inserted, %s deleted",
                         report.passages, report.inserted, report.deleted)
        return dg.MaterializeResult(metadata=knowledge_metadata(report, db))
    finally:
        db.close()


@dg.asset(
    group_name=GROUP, owners=OWNERS, kinds={"postgres"}, deps=[knowledge_base],
    description="Help requests answered from the knowledge base and the live state. Materializing it "
                "answers whatever is pending; help_requests_sensor does the same every 15 s and "
                "reports it here. Metadata: counts of pending, answered and failed requests, and "
                "the latest answers.",
)
def help_answers(context: dg.AssetExecutionContext, postgres: PostgresResource,
                 help_llm: HelpLLMResource) -> dg.MaterializeResult:
    db = postgres.database()
    try:
        drained = service.drain(db, service.worker_name("asset"), llm=help_llm.settings(), budget_s=300,
                                max_requests=500)
        context.log.info("answered %s, failed %s", len(drained.answered), len(drained.failed))
        return dg.MaterializeResult(metadata=answers_metadata(db, drained))
    finally:
        db.close()
