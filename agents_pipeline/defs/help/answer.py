"""Composing an answer: context (passages + live facts), then an LLM or an extractive answer.

Both paths number the same sources ([1], [2], ...) and end with the same source list, so an
operator can check every statement whichever path produced it. The LLM only ever improves the
wording: when it is not configured, slow, down or talks nonsense, the extractive answer is
given with a note saying why.

An agent's own request (``only_agents``, from request_store.facts_scope) is answered from the
docs and that agent's facts alone, LLM prompt included: the answer goes back to the agent.
"""

from __future__ import annotations

import re
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from agents_pipeline.core.connection import Database
from agents_pipeline.defs.help import facts as live
from agents_pipeline.defs.help import retrieval
from agents_pipeline.defs.help.llm import LLMError, LLMSettings, chat

TOP_PASSAGES = 3
_FLEET_WORDS = re.compile(r"\b(fleet|which agents|what agents|any agents?|agents? (are|is) (down|late|up|paused))\b", re.I)
SYSTEM_PROMPT = (
    "You are the operations help of agents_pipeline, a monitor for a fleet of background AI agents. "
    "Answer the operator's question using ONLY the numbered context below: live facts from the "
    "database and sections of the product's documentation. Be brief and practical: state the facts "
    "(status, times) first, then the steps to take. Cite every statement with its source number in "
    "square brackets, like [2]. If the context does not answer the question, say so plainly."
)
# The context of an agent's request holds no other agent's facts; the model is told so that it
# does not fill the gap with guesses about the agent the question names.
AGENT_SYSTEM_PROMPT = (
    "You are the operations help of agents_pipeline, a monitor for a fleet of background AI agents. "
    "One of the fleet's agents asks the question below. Answer using ONLY the numbered context below: "
    "the asking agent's own live facts from the database and sections of the product's documentation. "
    "You have no facts about any other agent: if the question is about another agent, say that facts "
    "about other agents are for operators, and never guess them. Be brief and practical: state the facts "
    "first, then the steps to take. Cite every statement with its source number in square brackets, "
    "like [2]. If the context does not answer the question, say so plainly."
)
SCOPE_NOTE = ("This answer uses the documentation and your own live state only; "
              "facts about other agents are for operators.")


@dataclass
class Context:
    question: str
    hits: list[retrieval.Hit]
    agents: list[live.AgentFacts]
    fleet: list[live.Fact]
    scoped: bool = False           # an agent's own request: its facts only
    sources: list[dict[str, Any]] = field(default_factory=list)
    fact_refs: list[tuple[live.Fact, int]] = field(default_factory=list)
    hit_refs: list[tuple[retrieval.Hit, int]] = field(default_factory=list)

    def number(self) -> None:
        """Assigns [n] to each distinct table row, then to each passage."""
        index: dict[tuple[str, str], int] = {}
        all_facts = [f for a in self.agents for f in a.facts] + self.fleet
        for fact in all_facts:
            key = (fact.table, fact.row)
            if key not in index:
                self.sources.append(fact.source)
                index[key] = len(self.sources)
            self.fact_refs.append((fact, index[key]))
        for hit in self.hits:
            self.sources.append({"type": "doc", "doc": hit.doc_path, "section": hit.section,
                                 "anchor": hit.anchor, "passage_id": hit.passage_id})
            self.hit_refs.append((hit, len(self.sources)))


@dataclass
class Answer:
    question: str
    text: str
    sources: list[dict[str, Any]]
    mode: str                      # llm | extractive | extractive-fallback
    prompt: str
    model: str
    latency_ms: float
    agents: list[str]
    note: str | None = None
    llm_error: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    scoped: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.text, "sources": self.sources, "mode": self.mode,
                "model": self.model, "agents": self.agents, "note": self.note, "latency_ms": round(self.latency_ms, 1)}


def gather(db: Database, question: str, agent_names: list[str] | tuple[str, ...] = (),
           only_agents: Collection[int] | None = None) -> Context:
    """Retrieved passages plus the live facts of every agent named or carried; with
    ``only_agents``, the facts of those agents alone and no fleet overview, whatever is named."""
    if only_agents is None:
        named = live.named_agents(db, question, agent_names)
    else:
        named = live.agents_by_id(db, only_agents)
    agents = live.agent_facts(db, named)
    # An agent that is down makes "down" part of the question even when the operator wrote
    # "what is wrong with demo?": the status steers retrieval to the matching runbook.
    statuses = " ".join(sorted({a.status for a in agents if a.status != "up"}))
    # An agent's name is a live-state word: matched against the docs it only finds the
    # examples that happen to use the same name ("why is demo down?" in docs/help.md).
    searched = question
    for a in agents:
        searched = re.sub(re.escape(a.name), " ", searched, flags=re.IGNORECASE)
    hits = retrieval.search(db, searched, limit=TOP_PASSAGES, extra_terms=statuses)
    fleet: list[live.Fact] = []
    if only_agents is None and not agents and _FLEET_WORDS.search(question):
        fleet = live.fleet_overview(db)
    context = Context(question, hits, agents, fleet, scoped=only_agents is not None)
    context.number()
    return context


def _excerpt(body: str, limit: int) -> str:
    """The start of a section, cut at a line end, markdown left as written."""
    if len(body) <= limit:
        return body.strip()
    cut = body.rfind("\n", 0, limit)
    cut = cut if cut > limit // 2 else body.rfind(" ", 0, limit)
    return body[: max(cut, 1)].rstrip() + " ..."


def _source_lines(context: Context) -> list[str]:
    lines = ["Sources:"]
    for n, src in enumerate(context.sources, 1):
        if src["type"] == "doc":
            lines.append(f"  [{n}] {src['doc']}#{src['anchor']} ({src['section']})")
        else:
            lines.append(f"  [{n}] {src['table']} {src['row']}")
    return lines


def extractive(context: Context) -> str:
    """The answer assembled from the facts and the passages themselves, no model involved."""
    lines: list[str] = []
    for fact, n in context.fact_refs:
        lines.append(f"{fact.text} [{n}]")
    if context.hit_refs:
        if lines:
            lines.append("")
        lines.append("From the documentation:")
        for i, (hit, n) in enumerate(context.hit_refs):
            lines.append(f"- {hit.section} [{n}]")
            excerpt = _excerpt(hit.body, 900 if i == 0 else 300)
            lines += [f"    {line}" if line else "" for line in excerpt.splitlines()]
    if not lines:
        lines.append("Nothing in the documentation or the live state matches this question. Try other "
                     "words, name the agent, or start from `agents-pipeline status` and docs/runbooks/README.md.")
    return "\n".join(lines)


def prompt_text(context: Context) -> str:
    """The user message: the question and the numbered context (also what is logged)."""
    parts = [f"Question: {context.question}", "", "Context:"]
    for fact, n in context.fact_refs:
        parts.append(f"[{n}] (live, {fact.table} {fact.row}) {fact.text}")
    for hit, n in context.hit_refs:
        parts.append(f"[{n}] (docs, {hit.doc_path} > {hit.section})\n{_excerpt(hit.body, 2500)}")
    return "\n".join(parts)


def answer(db: Database, question: str, agent_names: list[str] | tuple[str, ...] = (),
           llm: LLMSettings | None = None, *, only_agents: Collection[int] | None = None) -> Answer:
    """Answers ``question``: through ``llm`` when given and it behaves, else extractively.
    ``only_agents`` limits the live facts to those agents (an agent's own request)."""
    started = time.monotonic()
    context = gather(db, question, agent_names, only_agents)
    system = AGENT_SYSTEM_PROMPT if context.scoped else SYSTEM_PROMPT
    user = prompt_text(context)
    sources = "\n".join(_source_lines(context)) if context.sources else ""
    names = [a.name for a in context.agents]
    mode, model, note, error, body, tokens = "extractive", "extractive", None, None, None, (None, None)
    if llm is not None:
        try:
            reply = chat(llm, [{"role": "system", "content": system}, {"role": "user", "content": user}])
            body, model, mode, tokens = reply.text, reply.model, "llm", (reply.prompt_tokens, reply.completion_tokens)
        except LLMError as exc:
            error = str(exc)
            mode, model = "extractive-fallback", f"extractive (after {llm.model})"
            note = f"Note: {error}; this answer was assembled from the documentation and the live state."
    if body is None:
        body = extractive(context)
    scope_note = SCOPE_NOTE if context.scoped else None
    text = "\n\n".join(part for part in (note, scope_note, body, sources) if part)
    return Answer(question=question, text=text, sources=context.sources, mode=mode,
                  prompt=f"{system}\n\n{user}" if llm is not None else user, model=model,
                  latency_ms=(time.monotonic() - started) * 1000, agents=names, note=note, llm_error=error,
                  prompt_tokens=tokens[0], completion_tokens=tokens[1], scoped=context.scoped)
