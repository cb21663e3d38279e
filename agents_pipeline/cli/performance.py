"""Sub-commands of the performance domain for `agents-pipeline` (argparse only at import time).

    agents-pipeline perf sample [--host H] [--no-remote] [--json]
    agents-pipeline perf thresholds [--agent NAME] [--json]
    agents-pipeline perf set-threshold RULE [--agent NAME] [--above N | --no-limit] [--for S]
                                       [--enable | --disable] [--severity S]
    agents-pipeline perf rollup HOUR [--json]
"""

from __future__ import annotations

import argparse

from agents_pipeline.cli.conventions import add_command, add_json


def _run(args: argparse.Namespace) -> int:
    from agents_pipeline.cli import performance_report as commands

    return commands.run(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds this domain's sub-commands; each sets `handler` with parser.set_defaults(handler=...)."""
    perf = add_command(subparsers, "perf", "performance samples, thresholds and rollups",
                       ["agents-pipeline perf sample", "agents-pipeline perf thresholds --agent crawler"])
    actions = perf.add_subparsers(title="actions", dest="action", required=True, metavar="ACTION")

    sample = add_command(actions, "sample", "sample this host and its agents now, store and judge it",
                         ["agents-pipeline perf sample", "agents-pipeline perf sample --host worker-2 --no-remote --json"])
    sample.add_argument("--host", default=None, help="host name agents registered under (default: this host)")
    sample.add_argument("--no-remote", action="store_true",
                        help="do not judge agents on other hosts (for a sampler on an agent host)")
    add_json(sample)

    show = add_command(actions, "thresholds", "the threshold settings in force",
                       ["agents-pipeline perf thresholds", "agents-pipeline perf thresholds --agent crawler --json"])
    show.add_argument("--agent", default=None, help="an agent's own settings (its overrides applied)")
    add_json(show)

    setting = add_command(actions, "set-threshold", "override a threshold fleet-wide or for one agent",
                          ["agents-pipeline perf set-threshold cpu_percent --above 90 --for 300",
                           "agents-pipeline perf set-threshold rss_bytes --agent crawler --above 2e9",
                           "agents-pipeline perf set-threshold cpu_percent --agent crawler --reset"])
    setting.add_argument("rule", help="cpu_percent, rss_bytes, process_missing, host_cpu_percent, "
                                      "host_memory_percent, disk_used_percent, or custom:<metric> for a "
                                      "metric agents record with Agent.metric")
    setting.add_argument("--agent", default=None, help="only for this agent (agent rules only)")
    limit = setting.add_mutually_exclusive_group()
    limit.add_argument("--above", type=float, default=None, help="fire above this value")
    limit.add_argument("--no-limit", action="store_true", help="remove the limit (the rule cannot fire)")
    setting.add_argument("--for", dest="for_s", type=float, default=None, help="seconds the breach must last")
    onoff = setting.add_mutually_exclusive_group()
    onoff.add_argument("--enable", action="store_true", help="turn the rule on")
    onoff.add_argument("--disable", action="store_true", help="turn the rule off")
    setting.add_argument("--severity", choices=("info", "warning", "critical"), default=None,
                         help="severity of the alerts the rule opens")
    setting.add_argument("--reset", action="store_true", help="drop this rule's override (back to the layer below)")
    add_json(setting)

    rollup = add_command(actions, "rollup", "roll up one hour of raw samples (UTC)",
                         ["agents-pipeline perf rollup 2026-03-01T10:00", "agents-pipeline perf rollup 2026-03-01T10:00Z --json"])
    rollup.add_argument("hour", help="the UTC hour, e.g. 2026-03-01T10:00")
    add_json(rollup)

    perf.set_defaults(handler=_run)
