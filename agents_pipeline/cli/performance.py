"""Sub-commands of the performance domain for `agents-pipeline` (argparse only at import time).

    agents-pipeline perf sample [--host H] [--no-remote] [--json]
    agents-pipeline perf thresholds [--agent NAME] [--json]
    agents-pipeline perf set-threshold RULE [--agent NAME] [--above N | --no-limit] [--for S]
                                       [--enable | --disable] [--severity S]
    agents-pipeline perf rollup HOUR [--json]
"""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from agents_pipeline.cli import performance_report as commands

    return commands.run(args)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds this domain's sub-commands; each sets `handler` with parser.set_defaults(handler=...)."""
    perf = subparsers.add_parser("perf", help="performance samples, thresholds and rollups")
    actions = perf.add_subparsers(dest="action", required=True)

    sample = actions.add_parser("sample", help="sample this host and its agents now, store and judge it")
    sample.add_argument("--host", default=None, help="host name agents registered under (default: this host)")
    sample.add_argument("--no-remote", action="store_true",
                        help="do not judge agents on other hosts (for a sampler on an agent host)")
    sample.add_argument("--json", action="store_true")

    show = actions.add_parser("thresholds", help="the threshold settings in force")
    show.add_argument("--agent", default=None, help="an agent's own settings (its overrides applied)")
    show.add_argument("--json", action="store_true")

    setting = actions.add_parser("set-threshold", help="override a threshold fleet-wide or for one agent")
    setting.add_argument("rule", help="cpu_percent, rss_bytes, process_missing, host_cpu_percent, "
                                      "host_memory_percent, disk_used_percent, or custom:<metric> for a "
                                      "metric agents record with Agent.metric")
    setting.add_argument("--agent", default=None, help="only for this agent (agent rules only)")
    limit = setting.add_mutually_exclusive_group()
    limit.add_argument("--above", type=float, default=None, help="fire above this value")
    limit.add_argument("--no-limit", action="store_true", help="remove the limit (the rule cannot fire)")
    setting.add_argument("--for", dest="for_s", type=float, default=None, help="seconds the breach must last")
    onoff = setting.add_mutually_exclusive_group()
    onoff.add_argument("--enable", action="store_true")
    onoff.add_argument("--disable", action="store_true")
    setting.add_argument("--severity", choices=("info", "warning", "critical"), default=None)
    setting.add_argument("--reset", action="store_true", help="drop this rule's override (back to the layer below)")

    rollup = actions.add_parser("rollup", help="roll up one hour of raw samples (UTC), e.g. 2026-03-01T10:00")
    rollup.add_argument("hour")
    rollup.add_argument("--json", action="store_true")

    perf.set_defaults(handler=_run)
