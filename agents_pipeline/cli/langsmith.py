"""Sub-commands of the langsmith domain for `agents-pipeline` (argparse only at import time).

    agents-pipeline langsmith status [--json]      cursors, stored runs, unsent conversations
    agents-pipeline langsmith sync [--project P] [--start ISO --end ISO]
    agents-pipeline langsmith push
"""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import OK, PROBLEMS, add_command, add_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds this domain's sub-commands; each sets `handler` with parser.set_defaults(handler=...)."""
    ls = add_command(subparsers, "langsmith", "LangSmith sync: runs in, conversations out",
                     ["agents-pipeline langsmith status", "agents-pipeline langsmith sync"])
    sub = ls.add_subparsers(title="actions", dest="action", required=True, metavar="ACTION")
    status = add_command(sub, "status", "per project: cursor, last success, runs stored, pending",
                         ["agents-pipeline langsmith status", "agents-pipeline langsmith status --json"])
    add_json(status)
    status.set_defaults(handler=_status)
    sync = add_command(sub, "sync", "pull runs now (incremental, or a --start/--end backfill, with progress on a "
                       "terminal); exit 1 when a project failed",
                       ["agents-pipeline langsmith sync",
                        "agents-pipeline langsmith sync --project crawler --start 2026-01-01 --end 2026-02-01 --json"])
    sync.add_argument("--project", action="append", default=None, help="limit to this project (repeatable)")
    sync.add_argument("--start", default=None, help="backfill from this ISO 8601 instant (UTC if no zone)")
    sync.add_argument("--end", default=None, help="backfill up to this instant (exclusive)")
    add_json(sync)
    sync.set_defaults(handler=_sync)
    push = add_command(sub, "push", "send unsent local conversations to LangSmith now; exit 1 when some failed",
                       ["agents-pipeline langsmith push", "agents-pipeline langsmith push --json"])
    add_json(push)
    push.set_defaults(handler=_push)


def _engine():
    from agents_pipeline.cli.database import engine

    return engine("langsmith", pool_size=2)


def _resource():
    from agents_pipeline.core.errors import ConfigurationError
    from agents_pipeline.defs.langsmith.resources import resource_from_environment
    from agents_pipeline.defs.langsmith.settings import API_KEY

    resource = resource_from_environment()
    if not resource.configured:
        raise ConfigurationError(f"{API_KEY} is not set: LangSmith sync is off")
    return resource


def _status(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from agents_pipeline.cli.database import read_engine
    from agents_pipeline.console import print_json, print_table
    from agents_pipeline.defs.langsmith.resources import resource_from_environment

    resource = resource_from_environment()
    projects = list(resource.sync_settings().projects)
    engine = read_engine("langsmith")   # LLM stats only displayed: the replica may serve them
    try:
        with engine.begin() as conn:
            rows = [dict(r) for r in conn.execute(sa.text("""
                SELECT p.name AS project, c.cursor->>'high_water' AS read_up_to,
                       c.cursor->>'last_success_at' AS last_success,
                       (SELECT count(*) FROM fleet.llm_runs r WHERE r.project = p.name) AS runs_stored,
                       (SELECT count(*) FROM fleet.llm_runs r WHERE r.project = p.name AND r.end_time IS NULL) AS pending
                FROM unnest(CAST(:names AS text[])) AS p(name)
                LEFT JOIN fleet.sync_cursors c ON c.name = 'langsmith:' || p.name"""), {"names": projects}).mappings()]
            unsent = conn.execute(sa.text("""SELECT count(*) AS unsent, count(*) FILTER (WHERE push_attempts > 0) AS failing
                FROM fleet.llm_conversations WHERE langsmith_sent_at IS NULL""")).mappings().one()
    finally:
        engine.dispose()
    if args.json:
        print_json({"configured": resource.configured, "projects": rows, "conversations": dict(unsent)})
        return 0
    print(f"LangSmith: {'configured' if resource.configured else 'not configured (LANGSMITH_API_KEY unset)'}"
          f", endpoint {resource.endpoint}")
    if rows:
        print_table(rows, ["project", "read_up_to", "last_success", "runs_stored", "pending"])
    print(f"conversations not yet in LangSmith: {unsent['unsent']} ({unsent['failing']} with failed attempts)")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from agents_pipeline.console import Progress, print_json
    from agents_pipeline.core.errors import ConfigurationError
    from agents_pipeline.defs.langsmith.settings import parse_instant
    from agents_pipeline.defs.langsmith.sync import sync_all

    resource = _resource()
    settings = resource.sync_settings()
    if args.project:
        settings = replace(settings, projects=tuple(args.project))
    if (args.start is None) != (args.end is None):
        raise ConfigurationError("give both --start and --end for a backfill, or neither")
    window = (parse_instant(args.start, "start"), parse_instant(args.end, "end")) if args.start else None
    engine = _engine()
    try:
        # A bar per project on a terminal (stderr), nothing otherwise.
        with resource.session() as (client, _), Progress("langsmith sync", unit="runs") as progress:
            results = sync_all(engine, lambda: resource.source(client), settings,
                               redact=resource.redactor(), window=window, progress=progress)
    finally:
        engine.dispose()
    code = OK if all(r.ok for r in results) else PROBLEMS
    if args.json:
        print_json({"ok": code == OK, "projects": [{**asdict(r), "unchanged": r.unchanged} for r in results]})
        return code
    for r in results:
        state = "no such project" if r.missing else "ok" if r.ok else f"FAILED: {r.error}"
        print(f"{r.project}: {r.runs_fetched} read, {r.inserted} new, {r.updated} updated, "
              f"{r.unchanged} unchanged, {r.seconds:.1f}s: {state}")
    return code


def _push(args: argparse.Namespace) -> int:
    from agents_pipeline.defs.langsmith.push import push_conversations

    resource = _resource()
    errors: list[BaseException] = []
    engine = _engine()
    try:
        with resource.session(ingest_errors=errors) as (client, _):
            result = push_conversations(engine, client, errors, resource.push_project, redact=resource.redactor())
    finally:
        engine.dispose()
    code = OK if not result.failed else PROBLEMS
    if args.json:
        from dataclasses import asdict

        from agents_pipeline.console import print_json

        print_json({"ok": code == OK, **asdict(result)})
        return code
    print(f"sent {result.sent}, already in LangSmith {result.already_in_langsmith}, failed {result.failed}, "
          f"still unsent {result.unsent_remaining}, given up {result.gave_up}"
          + (f": {result.error}" if result.error else ""))
    return code
