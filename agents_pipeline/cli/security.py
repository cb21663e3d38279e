"""Sub-commands of the security domain for `agents-pipeline` (argparse only at import time).

`security grant-agent` is `db grant-agent` with its options; `security audit` checks that
the roles hold what they should and nothing more.
"""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command, add_json


def _grant_agent(args: argparse.Namespace) -> int:
    from agents_pipeline.defs.security.grants import grant_agent_command

    return grant_agent_command(args)


def _audit(args: argparse.Namespace) -> int:
    from agents_pipeline.cli.database import database
    from agents_pipeline.defs.security.audit import audit

    db = database("security")
    try:
        findings = audit(db)
    finally:
        db.close()
    if args.json:
        from agents_pipeline.console import print_json

        print_json({"ok": not findings, "findings": [{"role": f.role, "problem": f.problem} for f in findings]})
    elif findings:
        print("\n".join(str(f) for f in findings))
    else:
        print("roles as designed: the agent and API logins can run the agent functions and nothing else")
    return 1 if findings else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds this domain's sub-commands; each sets `handler` with parser.set_defaults(handler=...)."""
    security = add_command(subparsers, "security", "database roles and agent credentials",
                           ["agents-pipeline security audit", "agents-pipeline security grant-agent --json"])
    sub = security.add_subparsers(title="actions", dest="action", required=True, metavar="ACTION")
    grant = add_command(sub, "grant-agent", "print the connection settings an agent host needs (as db grant-agent)",
                        ["agents-pipeline security grant-agent", "agents-pipeline security grant-agent "
                         "--host db.internal --port 5432 --json"])
    grant.add_argument("--new-password", action="store_true",
                       help="set a new password on the agent login (every agent host must be updated)")
    grant.add_argument("--host", default=None, help="database host as agent hosts reach it (default: as configured)")
    grant.add_argument("--port", type=int, default=None, help="database port as agent hosts reach it")
    add_json(grant)
    grant.set_defaults(handler=_grant_agent)
    audit = add_command(sub, "audit", "check the roles' privileges against the design; exit 1 on a finding",
                        ["agents-pipeline security audit", "agents-pipeline security audit --json"])
    add_json(audit)
    audit.set_defaults(handler=_audit)
