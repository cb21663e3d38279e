"""``agents-pipeline readiness``: the readiness checks from a shell (argparse only at import time)."""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command, add_json


def _readiness(args: argparse.Namespace) -> int:
    import os

    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.defs.readiness.checklist import Check, database_checks
    from agents_pipeline.platform.instance_env import dagster_env

    url = resolve_url()
    # The Dagster instance of `make run`: the same variables `agents-pipeline dev` sets.
    for key, value in dagster_env(url).items():
        os.environ.setdefault(key, value)
    checks, agents = database_checks(url)
    if not args.skip_dagster:
        import importlib

        import dagster as dg

        from agents_pipeline.defs.readiness.instigators import dagster_checks

        try:
            repo = importlib.import_module(args.definitions).defs.get_repository_def()
            with dg.DagsterInstance.get() as instance:
                checks += dagster_checks(instance, repo, args.location)
        except Exception as exc:  # no instance at all: that is the failure to report
            checks.append(Check("dagster_instance", False, f"cannot open the Dagster instance: {exc}"))
    if args.json:
        from agents_pipeline.console import print_json

        print_json({"ready": all(c.passed for c in checks), "agents": agents,
                    "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail, **c.metadata} for c in checks]})
    else:
        width = max(len(c.name) for c in checks)
        for c in checks:
            print(f"{'PASS' if c.passed else 'FAIL'}  {c.name:<{width}}  {c.detail}")
        if agents:
            states = ", ".join(f"{n} {s}" for s, n in sorted(agents.items()))
            print(f"info  agents: {states} (an agent being down is not a readiness failure)")
    failed = sum(not c.passed for c in checks)
    if not args.json:
        print("ready" if not failed else f"NOT READY: {failed} of {len(checks)} checks failed")
    return 1 if failed else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds ``readiness``; its handler runs the same checks as the platform_readiness asset."""
    ready = add_command(subparsers, "readiness", "check environment, database, schema, heartbeat path, daemon, "
                        "schedules and sensors; exit 1 on any failure",
                        ["agents-pipeline readiness", "agents-pipeline readiness --skip-dagster --json"])
    add_json(ready)
    ready.add_argument("--skip-dagster", action="store_true", help="only the database-side checks")
    ready.add_argument("--definitions", default="agents_pipeline.definitions", metavar="MODULE",
                       help="module whose `defs` the code location serves (default agents_pipeline.definitions)")
    ready.add_argument("--location", default="agents_pipeline", help="code location name (default agents_pipeline)")
    ready.set_defaults(handler=_readiness)
