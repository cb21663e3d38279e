"""Sub-commands of the help domain for `agents-pipeline` (argparse only at import time)."""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds this domain's sub-commands; each sets `handler` with parser.set_defaults(handler=...)."""
    ask = add_command(
        subparsers, "ask", "ask the help a question; it answers from the docs and the live state, with sources",
        ['agents-pipeline ask "why is crawler down?"',
         'agents-pipeline ask "how do I restore an archived day?" --no-llm --json'],
        description="Answers at once from the runbooks and documentation and from the live state of "
                    "the agents the question names (or --agent). Uses the LLM configured in "
                    "AGENTS_PIPELINE_HELP_LLM_URL/_MODEL/_API_KEY when set, else an extractive answer.")
    ask.add_argument("question", help='the question, e.g. "why is demo down?"')
    ask.add_argument("--agent", default=None, help="an agent the question is about (besides those it names)")
    ask.add_argument("--json", action="store_true", help="print the answer, its sources and mode as JSON")
    ask.add_argument("--no-llm", action="store_true", help="answer extractively even when an LLM is configured")
    ask.set_defaults(handler=run_ask)


def run_ask(args: argparse.Namespace) -> int:
    import getpass
    import sys

    from agents_pipeline.cli.database import database, read_database
    from agents_pipeline.core.errors import ConfigurationError
    from agents_pipeline.core.replica import read_url
    from agents_pipeline.defs.help import knowledge, service
    from agents_pipeline.defs.help.llm import LLMSettings

    llm = None if args.no_llm else LLMSettings.from_env()
    db = database("help")
    read_db = read_database("help") if read_url() else None   # retrieval may read from the replica
    try:
        # The docs on disk win over a stale knowledge base (a sensor refreshes it too; this
        # makes `ask` right on a system where Dagster is not running).
        try:
            knowledge.refresh(db)
        except ConfigurationError as exc:  # no docs here: answer from what the database holds
            print(f"agents-pipeline: warning: {exc}; using the knowledge base as stored", file=sys.stderr)
        request_id, result = service.ask(db, args.question, agent=args.agent, llm=llm,
                                         requested_by=f"cli:{getpass.getuser()}", read_db=read_db)
    finally:
        db.close()
        if read_db is not None:
            read_db.close()
    if args.json:
        from agents_pipeline.console import print_json

        print_json({"request_id": request_id, **result.as_dict()})
    else:
        print(result.text)
    return 0
