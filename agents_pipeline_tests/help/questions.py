"""The fixed question set for retrieval, written before the docs were tuned (see git history).

Each entry: the question as an operator would type it, the sections that answer it
(``doc_path#anchor``; any one in the top 3 counts), and whether the question was written to
share no word with the section's heading path. "No word" is checked by the test with
PostgreSQL's own English parser (stop words never take part in matching), over the full
heading path of every accepted section, H1 included.
"""

from __future__ import annotations

from typing import NamedTuple

AGENT_DOWN = "docs/runbooks/agent-down.md"
ALERTS = "docs/runbooks/alerts-not-arriving.md"
DATABASE = "docs/runbooks/database-full-or-slow.md"
LANGSMITH = "docs/runbooks/langsmith-sync-failing.md"
MIGRATE = "docs/runbooks/migrate-sqlite.md"
INDEX = "docs/runbooks/README.md"
HELP = "docs/help.md"


class Question(NamedTuple):
    text: str
    answers: tuple[str, ...]
    no_shared_words: bool


QUESTIONS: tuple[Question, ...] = (
    # -- sharing words with the heading --------------------------------------------------------
    Question("why is demo down?", (f"{AGENT_DOWN}#first-checks", f"{AGENT_DOWN}#an-agent-is-down"), False),
    Question("The webhook never receives anything when an agent dies", (f"{ALERTS}#webhook-deliveries-fail",), False),
    Question("No emails are coming through", (f"{ALERTS}#email-smtp-deliveries-fail",), False),
    Question("Where is all the disk space going?", (f"{DATABASE}#find-what-takes-the-space",), False),
    Question("Heartbeat inserts hang for seconds", (f"{DATABASE}#locks-blocking-heartbeat-writers",), False),
    Question("LangSmith returns 401 unauthorized", (f"{LANGSMITH}#authentication-errors-401-403",), False),
    Question("What does --dry-run do for migrate-sqlite?", (f"{MIGRATE}#dry-run",), False),
    Question("The migration was killed halfway, what now?", (f"{MIGRATE}#the-migration-was-interrupted",), False),
    Question("How do I make the help answer with an LLM?", (f"{HELP}#configuring-an-llm",), False),
    Question("Queries take forever and the UI times out", (f"{DATABASE}#queries-are-slow",), False),
    Question("the agent runs but shows late or down",
             (f"{AGENT_DOWN}#the-agent-is-running-but-its-heartbeats-do-not-arrive",), False),
    Question("How do I take a backup before I touch anything?",
             (f"{DATABASE}#before-you-change-anything-take-a-backup", f"{INDEX}#restoring-data-archives-and-backups"),
             False),
    Question("Why does a fail heartbeat mark the agent down immediately?",
             (f"{AGENT_DOWN}#the-agent-reported-a-failure",), False),
    Question("Where does the information in an answer come from?", (f"{HELP}#sources", f"{HELP}#how-an-answer-is-built"),
             False),
    Question("The job started and never finished, now the agent is marked down",
             (f"{AGENT_DOWN}#overrun-a-start-without-a-success",), False),
    # -- sharing no word with the heading path -------------------------------------------------
    Question("What does the grace period do?", (f"{AGENT_DOWN}#how-an-agents-status-is-decided",), True),
    Question("How do I keep things quiet while I reboot the host tonight?",
             (f"{AGENT_DOWN}#planned-downtime-pause-or-silence",), True),
    Question("Too many requests from the tracing service", (f"{LANGSMITH}#rate-limits-429",), True),
    Question("How do I import my old agents.db?", (f"{MIGRATE}#run-the-migration", f"{MIGRATE}#before-you-start"),
             True),
    Question("Postgres ran out of room", (f"{DATABASE}#free-space-now", f"{DATABASE}#find-what-takes-the-space"), True),
    Question("too many clients already", (f"{DATABASE}#connections-exhausted",), True),
    Question("My worker crashed; how do I get it reporting again?", (f"{AGENT_DOWN}#the-process-is-not-running",), True),
    Question("Runs I posted yesterday never showed up in the tracing UI",
             (f"{LANGSMITH}#conversations-are-not-reaching-langsmith",), True),
    Question("Will I be pinged again if it stays broken for hours?", (f"{ALERTS}#reminders-and-resolved-notices",), True),
    Question("What happens to history from the old system after import?", (f"{MIGRATE}#after-the-migration",), True),
    Question("Who picks up questions that my bots send in?", (f"{HELP}#requests-from-agents-and-the-launchpad",), True),
    Question("Everything went red at the same moment", (f"{AGENT_DOWN}#when-the-whole-fleet-is-down-at-once",), True),
    Question("How do I bring back yesterday's rows that were moved to Parquet?",
             (f"{INDEX}#restoring-data-archives-and-backups",), True),
    Question("Which environment variables point notifications at Slack?", (f"{ALERTS}#which-channels-are-configured",),
             True),
    Question("Where can I see whether a message to the on-call person went out?",
             (f"{ALERTS}#check-the-notification-outbox",), True),
)
