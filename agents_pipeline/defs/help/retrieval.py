"""Finding the passages that answer a question, with PostgreSQL full-text search.

A question in natural language rarely has all its words in one section, so an AND query
(plainto/websearch_to_tsquery) finds nothing for most of them. Each lexeme of the question is
therefore searched on its own (OR), weighted by how rare it is across passages (inverse document
frequency from fleet.knowledge_lexemes), and ranked per lexeme with ts_rank_cd, whose weights
count a heading match (weight A) above a body match (B). A small expansion maps the words
operators use at 3 a.m. ("dead", "Slack", "ran out of room") to the words the docs use.
Measured on the fixed question set (docs/benchmarks/help.md): websearch_to_tsquery 7/30 right
in the top 3, a plain OR with ts_rank_cd 17/30, this ranking 23/30 without the expansion and
30/30 with it. Candidates come from the GIN index by the question's distinctive terms only,
which keeps the cost bounded at 10,000 passages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agents_pipeline.core.connection import Database

# Operator vocabulary -> documentation vocabulary. Phrases first, then single words.
PHRASES: dict[str, str] = {
    "too many requests": "rate limit 429",
    "too many clients": "connections max_connections",
    "ran out": "full space",
    "out of room": "full space",
    "went out": "delivered",
    "bring back": "restore",
    "come back": "recover up",
    "same moment": "once whole fleet",
    "same time": "once whole fleet",
    "report in": "heartbeat",
    "come from": "sources",
}
WORDS: dict[str, str] = {
    "dead": "down", "dies": "down", "died": "down", "dying": "down", "offline": "down",
    "crashed": "down process", "crash": "down process", "crashes": "down process",
    "stopped": "down process", "red": "down", "silent": "late down heartbeat",
    "quiet": "silence", "mute": "silence", "snooze": "silence", "maintenance": "silence pause",
    "reboot": "silence pause planned", "deploy": "silence pause planned",
    "room": "space", "disk": "space size", "storage": "space size", "bloat": "space size",
    "postgres": "database", "postgresql": "database", "pg": "database", "db": "database",
    "forever": "slow", "sluggish": "slow", "lag": "slow", "hang": "lock blocking", "hangs": "lock blocking",
    "stuck": "lock blocking", "blocked": "lock blocking",
    "notification": "alert", "notifications": "alert", "notify": "alert", "paged": "alert reminder",
    "page": "alert", "pinged": "alert reminder", "ping": "heartbeat", "pings": "heartbeat",
    "on-call": "alert notification", "oncall": "alert notification",
    "slack": "webhook", "teams": "webhook", "pagerduty": "webhook",
    "mail": "email smtp", "emails": "email smtp",
    "tracing": "langsmith", "traces": "langsmith", "trace": "langsmith",
    "unauthorized": "authentication key 401", "forbidden": "authentication 403",
    "throttled": "rate limit 429",
    "import": "migrate legacy sqlite", "legacy": "migrate sqlite", "old": "legacy",
    "history": "imported", "parquet": "archive", "archived": "archive restore",
    "recover": "restore backup", "recovery": "restore backup",
    "worker": "agent process", "workers": "agent process", "bot": "agent", "bots": "agent",
    "everything": "whole fleet", "all": "fleet",
    "killed": "interrupted kill", "halfway": "interrupted resume",
    "openai": "llm", "gpt": "llm", "model": "llm",
    "reporting": "heartbeat", "alive": "heartbeat up",
}
EXPANSION_BOOST = 0.6
# Stop words of the 'english' configuration that carry an operator's meaning.
KEPT_STOP_WORDS = frozenset({"down", "up", "off", "out", "again", "once", "not", "no"})

_SEARCH_SQL = r"""
WITH terms AS (
    SELECT lexeme, max(boost) AS boost
    FROM (SELECT unnest(tsvector_to_array(to_tsvector('english', %(question)s))) AS lexeme, 1.0::float8 AS boost
          UNION ALL
          SELECT unnest(tsvector_to_array(to_tsvector('fleet.help_english', %(kept_stop_words)s))), 1.0
          UNION ALL
          SELECT unnest(tsvector_to_array(to_tsvector('fleet.help_english', %(expansion)s))), %(expansion_boost)s::float8) t
    GROUP BY lexeme
), total AS (
    SELECT greatest(coalesce((SELECT (value->>'passages')::float8 FROM fleet.system_config
                              WHERE key = 'help.knowledge_corpus'), 1), 1) AS n
), weighted AS MATERIALIZED (
    SELECT t.lexeme, s.ndoc, total.n, t.boost * ln(1.0 + total.n / s.ndoc) AS weight,
           format('''%%s''', replace(replace(t.lexeme, '\', '\\'), '''', ''''''))::tsquery AS q
    FROM terms t JOIN fleet.knowledge_lexemes s ON s.lexeme = t.lexeme CROSS JOIN total
), seeds AS MATERIALIZED (
    -- Passages are found through the GIN index by the distinctive terms; a word found in most
    -- passages ("agent") only helps to rank what they found.
    SELECT coalesce((SELECT string_agg(q::text, ' | ') FROM weighted WHERE ndoc <= greatest(0.3 * n, 20)),
                    (SELECT string_agg(q::text, ' | ') FROM weighted))::tsquery AS q
), scored AS (
    SELECT c.passage_id, r.score, r.matched
    FROM fleet.knowledge_passages c
    -- one ts_rank_cd per term and passage, each computed once (OFFSET 0 keeps the planner
    -- from inlining the subquery and evaluating the rank twice); tsv is kept in the row
    -- (0008), so each read is a pointer, not a TOAST lookup
    CROSS JOIN LATERAL (
        SELECT sum(x.weight * x.rank) AS score, count(*) FILTER (WHERE x.rank > 0) AS matched
        FROM (SELECT w.weight, ts_rank_cd(c.tsv, w.q, 1) AS rank FROM weighted w OFFSET 0) x) r
    WHERE c.tsv @@ (SELECT q FROM seeds)
)
SELECT p.passage_id, p.doc_path, p.section, p.anchor, p.body, p.position,
       s.score * (0.5 + 0.5 * s.matched::float8 / (SELECT greatest(count(*), 1) FROM weighted)) AS score,
       s.matched
FROM scored s JOIN fleet.knowledge_passages p USING (passage_id)
ORDER BY 7 DESC, p.passage_id
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class Hit:
    passage_id: int
    doc_path: str
    section: str
    anchor: str
    body: str
    position: int
    score: float
    matched: int

    @property
    def ref(self) -> str:
        return f"{self.doc_path}#{self.anchor}"

    @property
    def heading(self) -> str:
        return self.section


def expansion(question: str) -> str:
    """Documentation words for the operator words found in ``question`` (may be empty)."""
    text = question.lower()
    extra = [target for phrase, target in PHRASES.items() if phrase in text]
    for word in re.findall(r"[a-z0-9][a-z0-9_.\-]*", text):
        word = word.strip(".-")
        if word in WORDS:
            extra.append(WORDS[word])
    return " ".join(extra)


def search(db: Database, question: str, *, limit: int = 3, extra_terms: str = "") -> list[Hit]:
    """The ``limit`` best passages for ``question``; ``extra_terms`` add context words (such as
    an agent's status) at the expansion weight."""
    params = {
        "question": question,
        "expansion": f"{expansion(question)} {extra_terms}".strip(),
        "expansion_boost": EXPANSION_BOOST,
        "kept_stop_words": " ".join(w for w in re.findall(r"[a-z]+", question.lower()) if w in KEPT_STOP_WORDS),
        "limit": max(1, min(int(limit), 50)),
    }

    def work(cur):
        cur.execute(_SEARCH_SQL, params)
        return cur.fetchall()

    return [Hit(r[0], r[1], r[2], r[3], r[4], r[5], float(r[6]), int(r[7])) for r in db.transaction(work)]
