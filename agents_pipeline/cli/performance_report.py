"""Handlers of ``agents-pipeline perf ...``: the same functions the Dagster face calls."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from datetime import UTC, datetime

import sqlalchemy as sa

from agents_pipeline.console import print_json, print_table
from agents_pipeline.core.errors import NotFoundError, ValidationError
from agents_pipeline.defs.performance import thresholds
from agents_pipeline.defs.performance.report import mib


def _engine() -> sa.Engine:
    from agents_pipeline.cli.database import engine

    return engine("perf")


def _sample(conn: sa.Connection, args: argparse.Namespace) -> int:
    from agents_pipeline.defs.performance.sampler import sample_once

    result = sample_once(conn, host=args.host, evaluate_remote=not args.no_remote)
    if args.json:
        print_json(asdict(result))
        return 0
    if result.skipped:
        print(f"skipped: {result.skipped}")
        return 0
    h = result.host_metrics
    cpu = f"{h['cpu_percent']:.1f} %" if "cpu_percent" in h else "baseline (next sample has it)"
    print(f"{result.host}: CPU {cpu}, memory {h['memory_percent']:.1f} %, load {h['load1']:.2f}, "
          f"{result.rows} rows, sampler {result.sampler_cpu_ms:.1f} ms CPU")
    rows = [{"agent": a.name, "found": a.processes if a.found else "no",
             "cpu_percent": "-" if a.cpu_percent is None else f"{a.cpu_percent:.1f}",
             "rss_mib": mib(a.rss_bytes), "problem": a.problem} for a in result.agents]
    if rows:
        print_table(rows, ["agent", "found", "cpu_percent", "rss_mib", "problem"])
    for key in result.alerts.opened:
        print(f"alert opened: {key}")
    for key in result.alerts.resolved:
        print(f"alert resolved: {key}")
    for problem in result.threshold_problems:
        print(f"warning: {problem}")
    return 0


def _agent(conn: sa.Connection, name: str):
    row = conn.execute(sa.text("SELECT agent_id, config -> 'thresholds' AS layer FROM fleet.agents WHERE name = :n"),
                       {"n": name}).first()
    if row is None:
        raise NotFoundError(f"unknown agent {name!r}")
    return row


def _show(conn: sa.Connection, args: argparse.Namespace) -> int:
    from agents_pipeline.defs.performance.store import global_thresholds

    layers = {}
    if args.agent:
        row = _agent(conn, args.agent)
        layers = {row.agent_id: (args.agent, row.layer)}
    eff = thresholds.resolve(global_thresholds(conn), layers)
    settings = eff.for_agent(next(iter(layers))) if layers else eff.fleet
    rules = (thresholds.AGENT_RULES if args.agent else tuple(thresholds.RULES)) + tuple(thresholds.custom_rules(settings))
    rows = [{"rule": r, "scope": thresholds.rule_for(r).scope, **asdict(settings[r])} for r in rules]
    if args.json:
        print_json({"agent": args.agent, "settings": rows, "problems": eff.problems})
    else:
        print_table(rows, ["rule", "scope", "enabled", "above", "for_s", "severity"])
        for problem in eff.problems:
            print(f"warning: {problem}")
    return 0


def _set(conn: sa.Connection, args: argparse.Namespace) -> int:
    from agents_pipeline.defs.performance.store import global_thresholds

    if args.rule not in thresholds.RULES and not thresholds.is_custom(args.rule):
        raise ValidationError(f"unknown rule {args.rule!r} (known: {', '.join(thresholds.RULES)}, "
                              f"or {thresholds.CUSTOM_PREFIX}<metric> for a metric agents record)")
    current = _agent(conn, args.agent).layer if args.agent else global_thresholds(conn)
    layer = dict(current) if isinstance(current, dict) else {}
    fields = {} if args.reset else dict(layer.get(args.rule) or {})
    if args.above is not None:
        fields["above"] = args.above
    if args.no_limit:
        fields["above"] = None
    if args.for_s is not None:
        fields["for_s"] = args.for_s
    if args.enable or args.disable:
        fields["enabled"] = bool(args.enable)
    if args.severity:
        fields["severity"] = args.severity
    if fields:
        layer[args.rule] = fields
    else:
        layer.pop(args.rule, None)
    thresholds.validate_layer(layer, agent=bool(args.agent))
    if args.agent:
        conn.execute(sa.text(
            "UPDATE fleet.agents SET config = jsonb_set(config, '{thresholds}', CAST(:v AS jsonb)), "
            "updated_at = now() WHERE name = :n"), {"v": json.dumps(layer), "n": args.agent})
    else:
        conn.execute(sa.text(
            "INSERT INTO fleet.system_config (key, value) VALUES (:k, CAST(:v AS jsonb)) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"),
            {"k": thresholds.CONFIG_KEY, "v": json.dumps(layer)})
    if args.json:
        print_json({"scope": args.agent or "fleet", "rule": args.rule, "setting": layer.get(args.rule)})
    else:
        print(f"{args.agent or 'fleet'}: {args.rule} = {json.dumps(layer.get(args.rule, 'default'))}")
    return 0


def _rollup(conn: sa.Connection, args: argparse.Namespace) -> int:
    from agents_pipeline.defs.performance.rollups import rollup_hour

    try:
        hour = datetime.fromisoformat(args.hour.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"hour {args.hour!r} is not an ISO time such as 2026-03-01T10:00") from None
    result = rollup_hour(conn, hour if hour.tzinfo else hour.replace(tzinfo=UTC))
    if args.json:
        print_json(asdict(result))
    else:
        print(f"{result.hour:%Y-%m-%d %H:00} UTC: {result.raw_samples} raw samples, {len(result.rows)} rollup rows "
              f"({result.changed} changed, {result.removed} removed)")
    return 0


def run(args: argparse.Namespace) -> int:
    handler = {"sample": _sample, "thresholds": _show, "set-threshold": _set, "rollup": _rollup}[args.action]
    if args.action == "thresholds":   # only displays: the replica may serve it
        from agents_pipeline.cli.database import read_engine

        engine = read_engine("perf")
    else:
        engine = _engine()
    try:
        with engine.begin() as conn:
            return handler(conn, args)
    finally:
        engine.dispose()
