"""``agents-pipeline fleet plan | apply | export``: the fleet as code (docs/fleet.md).

Exit codes: 0 done (plan: the registry matches the file), 1 plan found changes to apply (as
``terraform plan -detailed-exitcode`` says 2, here 2 is kept for "could not run"), 2 could not
run (a refused file, a database that cannot be reached). Logs and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from agents_pipeline.cli.conventions import add_command, add_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``fleet``; each action sets ``handler`` with set_defaults."""
    fleet = add_command(subparsers, "fleet", "the fleet as code: plan and apply a fleet.yaml, export the registry",
                        ["agents-pipeline fleet plan examples/fleet.yaml",
                         "agents-pipeline fleet apply examples/fleet.yaml"])
    actions = fleet.add_subparsers(dest="action", required=True, title="actions")
    p = add_command(actions, "plan", "show what apply would add, change and remove; applies nothing",
                    ["agents-pipeline fleet plan examples/fleet.yaml   # exit 0: nothing to do, 1: changes, 2: error",
                     "agents-pipeline fleet plan fleet.yaml --json | jq .added"])
    p.add_argument("file")
    add_json(p)
    p.set_defaults(handler=plan_command)
    p = add_command(actions, "apply", "make the registry match the file, in one transaction (idempotent)",
                    ["agents-pipeline fleet apply examples/fleet.yaml --tokens-file ~/fleet-tokens.txt",
                     "agents-pipeline fleet apply fleet.yaml --prune   # also retire agents no longer declared"],
                    description="Make the registry match the file, in one transaction (idempotent). New agents' "
                                "tokens are shown once (or written to --tokens-file); ping URLs stay available with "
                                "`agents-pipeline agents ping-url NAME`.")
    p.add_argument("file")
    p.add_argument("--prune", action="store_true", help="retire agents a fleet file declared earlier and "
                                                       "this one no longer does")
    p.add_argument("--tokens-file", metavar="PATH", help="write new agents' tokens to PATH (created 0600; "
                                                         "must not exist) instead of printing them")
    add_json(p)
    p.set_defaults(handler=apply_command)
    p = add_command(actions, "export", "write the registry as a fleet file",
                    ["agents-pipeline fleet export > fleet.yaml",
                     "agents-pipeline fleet export --output fleet.yaml --json"])
    p.add_argument("--output", "-o", metavar="PATH", help="write here (default: standard output)")
    add_json(p, "print a JSON summary (needs --output)")
    p.set_defaults(handler=export_command)


def _run(work):
    """``work(cursor)`` in one transaction on the shared-state database."""
    from agents_pipeline.cli.database import database

    db = database("fleet")
    try:
        return db.transaction(work)
    finally:
        db.close()


def _print_plan(plan, *, applied: bool, prune: bool) -> None:
    for spec in plan.added:
        print(f"+ {spec.name}" + (" (added)" if applied else ""))
    for name, changes in sorted(plan.changed.items()):
        print(f"~ {name}" + (" (changed)" if applied else ""))
        for key, (old, new) in changes.items():
            print(f"    {key}: {old!r} -> {new!r}")
    for name in plan.removed:
        if applied and prune:
            print(f"- {name} (retired)")
        else:
            print(f"- {name}" + ("" if prune or not applied else " (not declared; kept: --prune retires it)"))
    for name in plan.unmanaged:
        print(f"  {name}: registered by hand, not in the file (left alone)", file=sys.stderr)
    for warning in plan.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    n = len(plan.added), len(plan.changed), len(plan.removed)
    if not plan.has_changes:
        print("the registry matches the file: nothing to do")
    else:
        print(f"{'applied' if applied else 'plan'}: {n[0]} to add, {n[1]} to change, {n[2]} to remove"
              + (" (not removed without --prune)" if applied and not prune and n[2] else ""))


def plan_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import print_json
    from agents_pipeline.defs.coordination import fleet_file, fleet_sync

    # A refused file or an unreachable database raises: main prints one line (and a JSON error
    # document with --json) and exits 2.
    fleet = fleet_file.load(args.file)
    plan = _run(lambda cur: fleet_sync.plan(cur, fleet))
    if args.json:
        print_json({"file": args.file, **plan.as_dict()})
    else:
        _print_plan(plan, applied=False, prune=False)
    return 1 if plan.has_changes else 0


def _open_tokens_file(path: str) -> int:
    """Created here, 0600, before anything is applied: a path that cannot be written fails the
    command while nothing has changed yet. An existing file is refused, not overwritten, so the
    tokens of an earlier apply are never lost."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise OSError(f"{path}: exists; give a new path for the tokens") from None


def apply_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import print_json
    from agents_pipeline.core import ping_keys
    from agents_pipeline.defs.coordination import fleet_file, fleet_sync

    fd = None
    try:
        fleet = fleet_file.load(args.file)
        if args.tokens_file:
            fd = _open_tokens_file(args.tokens_file)
        plan, issued = _run(lambda cur: fleet_sync.apply(cur, fleet, prune=args.prune))
    except BaseException:   # nothing applied: the tokens file goes too
        if fd is not None:
            os.close(fd)
            os.unlink(args.tokens_file)
        raise
    tokens = {reg.name: reg.token for reg in issued}
    urls = {reg.name: ping_keys.ping_url(reg.ping_key) for reg in issued if reg.ping_key}
    if fd is not None:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for name, token in sorted(tokens.items()):
                fh.write(f"{name}\t{token}\n")
    if args.json:
        out = {"file": args.file, "applied": True, "pruned": bool(args.prune), **plan.as_dict(), "ping_urls": urls}
        out["tokens" if fd is None else "tokens_file"] = tokens if fd is None else args.tokens_file
        print_json(out)
        return 0
    _print_plan(plan, applied=True, prune=args.prune)
    for reg in issued:
        if fd is None:
            print(f"{reg.name}: token (shown once; give it to the agent as AGENTS_PIPELINE_AGENT_TOKEN): {reg.token}")
        print(f"{reg.name}: ping URL (`agents-pipeline agents ping-url {reg.name}` shows it again): {urls.get(reg.name)}")
    if fd is not None and issued:
        print(f"{len(issued)} token(s) written to {args.tokens_file} (mode 0600)")
    return 0


def export_command(args: argparse.Namespace) -> int:
    from agents_pipeline.console import print_json
    from agents_pipeline.core.errors import ValidationError
    from agents_pipeline.defs.coordination import fleet_file, fleet_sync

    if args.json and not args.output:
        raise ValidationError("--json prints a summary, so the file needs --output PATH")
    agents, skipped = _run(fleet_sync.export)
    text = fleet_file.dump(agents)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    for reason in skipped:
        print(f"skipped {reason}", file=sys.stderr)
    if args.json:
        print_json({"output": args.output, "agents": len(agents), "skipped": skipped})
    elif args.output:
        print(f"{len(agents)} agent(s) written to {args.output}", file=sys.stderr)
    return 0
