"""Retrieval quality on the fixed question set (questions.py), over the help-owned documents."""

from __future__ import annotations

import re

import pytest

from agents_pipeline.core.settings import PROJECT_DIR
from agents_pipeline.defs.help import retrieval
from agents_pipeline.defs.help.corpus import load_corpus
from agents_pipeline.defs.help.knowledge import sync_passages
from agents_pipeline_tests.help.questions import QUESTIONS

# The corpus the set was written against. Other domains' docs join it after the merge; the
# set is measured on these files so that the figure does not move with unrelated documents.
HELP_OWNED = (
    "docs/help.md",
    "docs/runbooks/README.md",
    "docs/runbooks/agent-down.md",
    "docs/runbooks/alerts-not-arriving.md",
    "docs/runbooks/database-full-or-slow.md",
    "docs/runbooks/langsmith-sync-failing.md",
    "docs/runbooks/migrate-sqlite.md",
)


@pytest.fixture
def loaded(database):
    passages = load_corpus(PROJECT_DIR, HELP_OWNED)
    sync_passages(database, passages)
    return {f"{p.doc_path}#{p.anchor}": p.section for p in passages}


def test_question_set_shape(database, loaded):
    """At least 20 questions; at least half share no lexeme with the heading path of any
    section that answers them; every expected section exists in the docs."""
    assert len(QUESTIONS) >= 20
    flagged = [q for q in QUESTIONS if q.no_shared_words]
    assert len(flagged) * 2 >= len(QUESTIONS)
    for q in QUESTIONS:
        for ref in q.answers:
            assert ref in loaded, f"{ref} (for {q.text!r}) is not a section of the docs"

    def lexemes(cur, text: str) -> set[str]:
        # what retrieval matches on: English lexemes plus the stop words it keeps ("down", ...)
        kept = " ".join(w for w in re.findall(r"[a-z]+", text.lower()) if w in retrieval.KEPT_STOP_WORDS)
        cur.execute("""SELECT array(SELECT unnest(tsvector_to_array(to_tsvector('english', %s)))
                                   UNION SELECT unnest(tsvector_to_array(to_tsvector('fleet.help_english', %s))))""",
                    (text, kept))
        return set(cur.fetchone()[0])

    def work(cur):
        return [(q.text, loaded[ref], lexemes(cur, q.text) & lexemes(cur, loaded[ref]))
                for q in flagged for ref in q.answers]

    shared = [(text, heading, words) for text, heading, words in database.transaction(work) if words]
    assert shared == []


def test_right_section_in_top_three(database, loaded, record_property):
    """Retrieval puts a right section in the top 3 for at least 90 % of the set."""
    misses = []
    for q in QUESTIONS:
        hits = retrieval.search(database, q.text, limit=3)
        if not {h.ref for h in hits} & set(q.answers):
            misses.append((q.text, [h.ref for h in hits]))
    share = 1 - len(misses) / len(QUESTIONS)
    record_property("top3_share", share)
    print(f"\nretrieval top-3: {len(QUESTIONS) - len(misses)}/{len(QUESTIONS)} = {share:.1%}")
    for text, got in misses:
        print(f"  MISS {text!r}: {got}")
    assert share >= 0.9, misses
