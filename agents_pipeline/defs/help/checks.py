"""Asset checks of the help: a knowledge base that is empty or behind the docs shows red."""

import dagster as dg

from agents_pipeline.defs.help import knowledge
from agents_pipeline.defs.help.assets import knowledge_base
from agents_pipeline.defs.help.corpus import corpus_hash, load_corpus
from agents_pipeline.platform.resources import PostgresResource


@dg.asset_check(asset=knowledge_base, description="The knowledge base holds passages and matches the docs "
                                                  "on disk (else answers cite stale or no sections).")
def knowledge_base_current(postgres: PostgresResource) -> dg.AssetCheckResult:
    db = postgres.database(maxconn=1)
    try:
        stored = knowledge.stored_hash(db)
        passages = sum(d["passages"] for d in knowledge.knowledge_summary(db)["documents"])
    finally:
        db.close()
    on_disk = corpus_hash(load_corpus())
    problem = ("the knowledge base is empty: materialize knowledge_base" if passages == 0 else
               "the docs changed since the last load: knowledge_base_sensor reloads within a minute"
               if stored != on_disk else None)
    return dg.AssetCheckResult(
        passed=problem is None, severity=dg.AssetCheckSeverity.WARN, description=problem,
        metadata={"passages": passages, "stored_hash": stored or "", "docs_hash": on_disk})
