"""Splitting the docs into passages and keeping the knowledge base in step with them."""

from __future__ import annotations

import pytest

from agents_pipeline.core.errors import ConfigurationError
from agents_pipeline.defs.help import corpus, knowledge
from agents_pipeline.defs.help.corpus import load_corpus, split_markdown
from agents_pipeline_tests.help.conftest import run_sql

DOC = """Intro before any heading.

# Title
Title text.

## First `step`: check!
Body one.

```bash
# not a heading, inside a fence
echo hi
```

### Deeper
Deep body.

## First step: check
Repeated heading.

## Empty

## Last
End.
"""


def test_split_markdown_sections_anchors_and_fences():
    passages = split_markdown("docs/x.md", DOC)
    got = [(p.section, p.anchor) for p in passages]
    assert got == [
        ("x", "x"),
        ("Title", "title"),
        ("Title > First `step`: check!", "first-step-check"),
        ("Title > First `step`: check! > Deeper", "deeper"),
        ("Title > First step: check", "first-step-check-1"),
        ("Title > Last", "last"),
    ]
    fenced = passages[2].body
    assert "# not a heading, inside a fence" in fenced and "echo hi" in fenced
    assert [p.position for p in passages] == list(range(6))


def test_long_section_is_split_in_pieces():
    body = "\n\n".join(f"paragraph {i} " + "word " * 100 for i in range(20))
    passages = split_markdown("docs/long.md", f"# Long\n{body}\n")
    assert len(passages) > 1
    assert all(len(p.body) <= corpus.MAX_PASSAGE_CHARS for p in passages)
    assert {p.anchor for p in passages} == {"long"}
    assert "".join(p.body for p in passages).count("paragraph") == 20


def test_docs_folder_from_environment_and_bad_files(tmp_path, monkeypatch):
    (tmp_path / "docs" / "runbooks").mkdir(parents=True)
    (tmp_path / "README.md").write_text("# Readme\nhello\n")
    (tmp_path / "docs" / "runbooks" / "a.md").write_text("# A\nalpha\n")
    monkeypatch.setenv(corpus.DOCS_ENV, str(tmp_path))
    assert [p.doc_path for p in load_corpus()] == ["README.md", "docs/runbooks/a.md"]
    (tmp_path / "docs" / "bad.md").write_bytes(b"# Bad\n\xff\xfe\n")
    with pytest.raises(ConfigurationError, match="docs/bad.md is not valid UTF-8"):
        load_corpus()
    monkeypatch.setenv(corpus.DOCS_ENV, str(tmp_path / "missing"))
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_corpus()


def test_sync_is_idempotent_and_keeps_unchanged_rows(database, tmp_path):
    """Regression guard: a reload must not duplicate passages nor churn unchanged rows."""
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "a.md"
    doc.write_text("# A\nalpha\n## One\nfirst body\n## Two\nsecond body\n")
    first = knowledge.refresh(database, tmp_path)
    assert (first.inserted, first.deleted, first.passages) == (3, 0, 3)
    ids = dict(run_sql(database, "SELECT anchor, passage_id FROM fleet.knowledge_passages"))
    assert knowledge.refresh(database, tmp_path) is None          # unchanged: one hash compare
    again = knowledge.sync_passages(database, load_corpus(tmp_path))
    assert (again.inserted, again.deleted) == (0, 0)

    doc.write_text("# A\nalpha\n## One\nfirst body, edited\n## Three\nthird body\n")
    changed = knowledge.refresh(database, tmp_path)
    assert (changed.inserted, changed.deleted) == (2, 2)
    rows = dict(run_sql(database, "SELECT anchor, passage_id FROM fleet.knowledge_passages"))
    assert set(rows) == {"a", "one", "three"} and rows["a"] == ids["a"] and rows["one"] != ids["one"]
    lexemes = dict(run_sql(database, "SELECT lexeme, ndoc FROM fleet.knowledge_lexemes"))
    assert lexemes["third"] == 1 and "second" not in lexemes
    assert run_sql(database, "SELECT value->>'hash' FROM fleet.system_config WHERE key = %s",
                   (knowledge.CONFIG_KEY,))[0][0] == changed.corpus_hash


def test_status_words_are_searchable(database, tmp_path):
    """Regression: the stock 'english' configuration drops "down" as a stop word, so "why is X
    down?" matched nothing; the passages' vector keeps it."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Down\nwhen it is down\n# Other\nunrelated text\n")
    knowledge.refresh(database, tmp_path)
    from agents_pipeline.defs.help import retrieval

    hits = retrieval.search(database, "why is it down?")
    assert [h.anchor for h in hits] == ["down"]


def test_installed_package_reads_the_bundled_copy(tmp_path, monkeypatch):
    """An installed wheel has no project folder: the copy made by the build is read instead,
    and a stray site-packages/docs folder is not mistaken for the project's."""
    site = tmp_path / "site-packages"
    (site / "docs").mkdir(parents=True)
    (site / "docs" / "other.md").write_text("# Someone else's docs\n")
    bundle = tmp_path / "bundled_docs"
    (bundle / "docs" / "runbooks").mkdir(parents=True)
    (bundle / "docs" / "runbooks" / "agent-down.md").write_text("# An agent is down\nsteps\n")
    monkeypatch.delenv(corpus.DOCS_ENV, raising=False)
    monkeypatch.setattr(corpus, "PROJECT_DIR", site)
    monkeypatch.setattr(corpus, "BUNDLE_DIR", bundle)
    assert corpus.docs_root() == bundle
    assert [p.doc_path for p in load_corpus()] == ["docs/runbooks/agent-down.md"]
    monkeypatch.setattr(corpus, "BUNDLE_DIR", tmp_path / "absent")
    with pytest.raises(ConfigurationError, match="no documentation found"):
        corpus.docs_root()


def test_hostile_questions_are_searched_not_parsed(database, tmp_path):
    """Quotes, backslashes and tsquery operators in a question are plain words to search for."""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Paths\nC:\\temp\\agent's file and O'Brien's notes\n")
    knowledge.refresh(database, tmp_path)
    from agents_pipeline.defs.help import retrieval

    for question in ("O'Brien's C:\\temp\\agent's file?", "a & b | !c <-> d:* ''; DROP TABLE x; --",
                     "\\\\'\\'", "(((", "'"):
        hits = retrieval.search(database, question)
        assert all(h.anchor == "paths" for h in hits)
    assert [h.anchor for h in retrieval.search(database, "O'Brien's notes")] == ["paths"]
    assert run_sql(database, "SELECT count(*) FROM fleet.knowledge_passages")[0][0] == 1


def test_two_loaders_at_once_store_the_corpus_once(db_url, database, tmp_path):
    """The advisory lock serialises concurrent loads (sensor and `ask` at the same moment)."""
    import threading

    from agents_pipeline.core.connection import Database

    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("\n".join(f"## S{i}\nbody {i}" for i in range(200)))
    passages = load_corpus(tmp_path)
    reports, barrier = [], threading.Barrier(3)

    def load() -> None:
        db = Database(db_url, maxconn=1, retry_window=5)
        try:
            barrier.wait()
            reports.append(knowledge.sync_passages(db, passages))
        finally:
            db.close()

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.inserted for r in reports) == [0, 0, 200]
    assert run_sql(database, "SELECT count(*), count(DISTINCT content_hash) FROM fleet.knowledge_passages")[0] == [200, 200]


def test_ask_path_imports_no_heavy_modules():
    """`agents-pipeline ask` must start like the other agent-side commands: no Dagster,
    SQLAlchemy or pandas on its import path."""
    import subprocess
    import sys

    code = ("import sys, agents_pipeline.cli.main as m, agents_pipeline.cli.help, agents_pipeline.defs.help.service, "
            "agents_pipeline.defs.help.knowledge; print(sorted(x for x in ('dagster', 'sqlalchemy', 'pandas') "
            "if x in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
