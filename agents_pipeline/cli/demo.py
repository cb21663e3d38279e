"""The demo fleet's commands and ``launch`` for `agents-pipeline` (argparse only at import time):
``demo-fleet``, ``demo-seed``, ``demo-kickoff`` and ``launch`` (runs through the webserver)."""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command, add_json


def _demo_seed(args: argparse.Namespace) -> int:
    import time

    from agents_pipeline.core.connection import Database
    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.demo.seed import SeedPlan, seed_history

    plan = SeedPlan(agents=args.agents, days=args.days, heartbeat_every_s=args.heartbeat_every,
                    sample_every_s=args.sample_every, conversation_every_s=args.conversation_every)
    db = Database(resolve_url(), maxconn=1, application_name="agents_pipeline:demo-seed")
    try:
        started = time.perf_counter()
        counts = seed_history(db, plan)
    finally:
        db.close()
    took = time.perf_counter() - started
    if getattr(args, "json", False):
        from agents_pipeline.console import print_json

        print_json({"days": plan.days, "agents": plan.agents, "seconds": round(took, 3), "rows": counts})
    elif not any(counts.values()):
        print("demo history is already seeded up to now; nothing to add")
    else:
        print(f"seeded {plan.days} days of demo history in {took:.1f} s: "
              + ", ".join(f"{n} {table}" for table, n in counts.items()))
    return 0


def _demo_fleet(args: argparse.Namespace) -> int:
    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.demo.fleet import run_fleet

    if args.seed:
        import contextlib
        import sys

        with contextlib.redirect_stdout(sys.stderr):   # the fleet's own output follows on stdout
            _demo_seed(args)
    return run_fleet(resolve_url(), args.agents, period_s=args.period, grace_s=args.grace, duration_s=args.duration)


def _demo_swarm(args: argparse.Namespace) -> int:
    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.demo.swarm import run_swarm

    return run_swarm(resolve_url(), args.agents, skip=args.skip, period_s=args.period, grace_s=args.grace,
                     duration_s=args.duration)


def _demo_kickoff(args: argparse.Namespace) -> int:
    import importlib

    from agents_pipeline.demo.kickoff import kickoff, kickoff_plan, wait_for_webserver
    from agents_pipeline.platform.launch import ui_url

    repo = importlib.import_module(args.definitions).defs.get_repository_def()
    if args.dry_run:
        plan = kickoff_plan(repo)
        if args.json:
            from agents_pipeline.console import print_json

            print_json({"dry_run": True, "launches": [{"asset": item.asset_key,
                                                     "partition": item.partition} for item in plan]})
            return 0
        for item in plan:
            print(f"would materialize {item.asset_key} [{item.partition}]")
        return 0
    url = (args.ui or ui_url()).rstrip("/")
    wait_for_webserver(url, args.wait)
    launched = kickoff(url, repo)
    if args.json:
        from agents_pipeline.console import print_json

        print_json({"dry_run": False, "launches": [{"asset": item.asset_key, "partition": item.partition,
                                                  "run_id": run_id, "url": f"{url}/runs/{run_id}"}
                                                 for item, run_id in launched]})
        return 0
    for item, run_id in launched:
        print(f"queued {item.asset_key} [{item.partition}]: {url}/runs/{run_id}")
    if not launched:
        print("no partitioned assets to materialize")
    return 0


def _demo_history(args: argparse.Namespace) -> int:
    import time

    from agents_pipeline.core.shared_state import resolve_url
    from agents_pipeline.demo.history import fill_history
    from agents_pipeline.demo.kickoff import wait_for_webserver
    from agents_pipeline.platform.history_start import history_start
    from agents_pipeline.platform.launch import ui_url

    url = None if args.no_report else (args.ui or ui_url()).rstrip("/")
    if url:
        wait_for_webserver(url, args.wait)
    started = time.perf_counter()
    filled = fill_history(resolve_url(), url, args.days, start=history_start())
    if args.json:
        from agents_pipeline.console import print_json

        print_json({"hours_rolled": filled.hours_rolled, "hours_without_samples": filled.hours_refused,
                    "days_refreshed": filled.days_refreshed, "reported": filled.reported,
                    "seconds": round(time.perf_counter() - started, 1)})
        return 0
    print(f"demo history: {filled.hours_rolled} hours rolled up ({filled.hours_refused} without samples), "
          f"{filled.days_refreshed} days of LLM usage, {filled.reported} materializations reported "
          f"in {time.perf_counter() - started:.1f} s")
    return 0


def _launch(args: argparse.Namespace) -> int:
    from agents_pipeline.platform.launch import launch_command

    return launch_command(args)


def _seed_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days", type=int, default=40, help="days of history (default 40: past 30-day retention)")
    parser.add_argument("--heartbeat-every", type=int, default=60, metavar="S", help="seconds between seeded heartbeats")
    parser.add_argument("--sample-every", type=int, default=300, metavar="S", help="seconds between seeded samples")
    parser.add_argument("--conversation-every", type=int, default=600, metavar="S",
                        help="seconds between seeded conversations per agent")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds this domain's sub-commands; each sets `handler` with parser.set_defaults(handler=...)."""
    fleet = add_command(subparsers, "demo-fleet", "run simulated agents, one OS process each, until Ctrl-C "
                        "(a long-running process: no --json)",
                        ["agents-pipeline demo-fleet", "agents-pipeline demo-fleet --agents 12 --seed --duration 600"])
    fleet.add_argument("--agents", type=int, default=6, help="number of agents (default 6)")
    fleet.add_argument("--period", type=float, default=10.0, help="seconds between heartbeats (default 10)")
    fleet.add_argument("--grace", type=float, default=5.0, help="registered grace in seconds (default 5)")
    fleet.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    fleet.add_argument("--seed", action="store_true", help="seed backdated history first (as demo-seed)")
    _seed_arguments(fleet)
    fleet.set_defaults(handler=_demo_fleet)

    seed = add_command(subparsers, "demo-seed", "seed weeks of backdated demo history (idempotent)",
                       ["agents-pipeline demo-seed", "agents-pipeline demo-seed --agents 20 --days 10 --json"])
    seed.add_argument("--agents", type=int, default=6, help="number of demo agents (default 6)")
    _seed_arguments(seed)
    add_json(seed)
    seed.set_defaults(handler=_demo_seed)

    kick = add_command(subparsers, "demo-kickoff", "queue the latest partition of every partitioned asset "
                       "through the webserver (after demo-seed)",
                       ["agents-pipeline demo-kickoff", "agents-pipeline demo-kickoff --dry-run --json"])
    kick.add_argument("--ui", help="webserver URL (default AGENTS_PIPELINE_UI_URL or http://127.0.0.1:3000)")
    kick.add_argument("--wait", type=float, default=180.0, help="seconds to wait for the webserver (default 180)")
    kick.add_argument("--definitions", default="agents_pipeline.definitions", metavar="MODULE",
                      help="module whose `defs` the code location serves (default agents_pipeline.definitions)")
    kick.add_argument("--dry-run", action="store_true", help="print what would be launched")
    add_json(kick)
    kick.set_defaults(handler=_demo_kickoff)

    swarm = add_command(subparsers, "demo-swarm",
                        "run many simulated agents in this one process (for fleets of hundreds or thousands)",
                        ["agents-pipeline demo-swarm --agents 1000 --skip 6   # beside demo-fleet --agents 6"])
    swarm.add_argument("--agents", type=int, default=1000, help="fleet size, as demo-fleet names it (default 1000)")
    swarm.add_argument("--skip", type=int, default=0, help="leave the first N agents to demo-fleet's processes")
    swarm.add_argument("--period", type=float, default=30.0, help="seconds between heartbeats (default 30)")
    swarm.add_argument("--grace", type=float, default=15.0, help="registered grace in seconds (default 15)")
    swarm.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    swarm.set_defaults(handler=_demo_swarm)

    history = add_command(subparsers, "demo-history",
                          "roll up the seeded days and report each partition to the UI, so plots show history",
                          ["agents-pipeline demo-history --days 40", "agents-pipeline demo-history --no-report --json"])
    history.add_argument("--days", type=int, default=40, help="days back (default 40, what demo-seed writes)")
    history.add_argument("--ui", help="webserver URL (default AGENTS_PIPELINE_UI_URL or http://127.0.0.1:3000)")
    history.add_argument("--wait", type=float, default=180.0, help="seconds to wait for the webserver (default 180)")
    history.add_argument("--no-report", action="store_true", help="only compute the rows, report nothing to the UI")
    add_json(history)
    history.set_defaults(handler=_demo_history)

    launch = add_command(subparsers, "launch", "launch a job through the running webserver and wait for it",
                         ["agents-pipeline launch retention_maintenance_job",
                          "agents-pipeline launch __ASSET_JOB --asset hourly_performance_rollups "
                          "--partition 2026-03-01-10:00 --json"])
    launch.add_argument("job", help="job name (__ASSET_JOB with --asset for plain assets)")
    launch.add_argument("--config", help="YAML file of run config")
    launch.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a run tag (repeatable)")
    launch.add_argument("--asset", action="append", metavar="KEY", help="asset key to materialize (repeatable)")
    launch.add_argument("--partition", help="partition key")
    launch.add_argument("--location", default="agents_pipeline", help="code location (default agents_pipeline)")
    launch.add_argument("--ui", help="webserver URL (default AGENTS_PIPELINE_UI_URL or http://127.0.0.1:3000)")
    launch.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run (default 600)")
    launch.add_argument("--no-wait", action="store_true", help="print the run's URL and return at once")
    add_json(launch)
    launch.set_defaults(handler=_launch)
