"""The knowledge base in PostgreSQL: passages synchronised from the docs, set-based, in one
transaction, under an advisory lock (two loaders never interleave), keeping the rows of
unchanged passages. The corpus hash is stored in fleet.system_config, so "are the docs newer
than the database?" is one primary-key read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psycopg2.extras

from agents_pipeline.core.connection import Database
from agents_pipeline.defs.help.corpus import Passage, corpus_hash, docs_root, load_corpus

CONFIG_KEY = "help.knowledge_corpus"
LOCK_KEY = 0x68656C70  # "help"


@dataclass(frozen=True)
class SyncReport:
    corpus_hash: str
    documents: int
    passages: int
    inserted: int
    deleted: int
    changed: bool
    source: str


def stored_hash(db: Database) -> str | None:
    def work(cur):
        cur.execute("SELECT value->>'hash' FROM fleet.system_config WHERE key = %s", (CONFIG_KEY,))
        row = cur.fetchone()
        return row[0] if row else None

    return db.transaction(work)


def sync_passages(db: Database, passages: Sequence[Passage], *, source: str = "") -> SyncReport:
    """Makes fleet.knowledge_passages hold exactly ``passages``: removed and changed sections go,
    new ones arrive, unchanged rows keep their ids. Re-running with the same input changes
    nothing. The lexeme statistics are recomputed only when something changed."""
    digest = corpus_hash(passages)
    rows = [(p.doc_path, p.section, p.anchor, p.body, p.content_hash, p.position) for p in passages]

    def work(cur):
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
        cur.execute("""CREATE TEMP TABLE incoming (doc_path text, section text, anchor text, body text,
                           content_hash text, position integer) ON COMMIT DROP""")
        psycopg2.extras.execute_values(
            cur, "INSERT INTO incoming VALUES %s", rows, page_size=1000)
        cur.execute("""DELETE FROM fleet.knowledge_passages k
                       WHERE NOT EXISTS (SELECT 1 FROM incoming n
                                         WHERE n.doc_path = k.doc_path AND n.content_hash = k.content_hash)""")
        deleted = cur.rowcount
        cur.execute("""INSERT INTO fleet.knowledge_passages (doc_path, section, anchor, body, content_hash, position)
                       SELECT n.doc_path, n.section, n.anchor, n.body, n.content_hash, n.position
                       FROM incoming n
                       WHERE NOT EXISTS (SELECT 1 FROM fleet.knowledge_passages k
                                         WHERE k.doc_path = n.doc_path AND k.content_hash = n.content_hash)""")
        inserted = cur.rowcount
        cur.execute("SELECT NOT EXISTS (SELECT 1 FROM fleet.knowledge_lexemes)")
        stats_missing = cur.fetchone()[0]
        if inserted or deleted or stats_missing:
            cur.execute("DELETE FROM fleet.knowledge_lexemes")
            cur.execute("""INSERT INTO fleet.knowledge_lexemes (lexeme, ndoc, nentry)
                           SELECT word, ndoc, nentry FROM ts_stat('SELECT tsv FROM fleet.knowledge_passages')""")
        cur.execute(
            """INSERT INTO fleet.system_config (key, value, description, updated_at)
               VALUES (%s, %s::jsonb, 'corpus hash of the help knowledge base', now())
               ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()
               WHERE fleet.system_config.value IS DISTINCT FROM EXCLUDED.value""",
            (CONFIG_KEY, json.dumps({"hash": digest, "passages": len(rows), "source": source})))
        return inserted, deleted

    inserted, deleted = db.transaction(work)
    return SyncReport(
        corpus_hash=digest, documents=len({p.doc_path for p in passages}), passages=len(rows),
        inserted=inserted, deleted=deleted, changed=bool(inserted or deleted), source=source)


def refresh(db: Database, root: Path | None = None, *, force: bool = False) -> SyncReport | None:
    """Loads the docs when they differ from what the database holds; None when already current
    (reading ~30 small files and one row: cheap enough for every sensor tick and every `ask`)."""
    base = docs_root(root)
    passages = load_corpus(base)
    if not force and stored_hash(db) == corpus_hash(passages):
        return None
    return sync_passages(db, passages, source=str(base))


def knowledge_summary(db: Database) -> dict:
    """Per-document passage counts, for the asset's metadata."""
    def work(cur):
        cur.execute("""SELECT doc_path, count(*) AS passages, max(loaded_at) AS loaded_at
                       FROM fleet.knowledge_passages GROUP BY doc_path ORDER BY doc_path""")
        return [dict(r) for r in cur.fetchall()]

    return {"documents": db.transaction(work)}
