"""Threshold rules, their defaults, and the global and per-agent overrides.

A rule fires when its metric stays past its limit for ``for_s`` seconds (Prometheus' ``for:``),
so a one-minute spike does not page anyone. Settings merge in three layers: the defaults
below, the fleet-wide overrides in ``fleet.system_config`` under ``performance.thresholds``,
and an agent's own overrides in ``fleet.agents.config -> 'thresholds'``. Each layer is a JSON
object ``{rule: {"above": number|null, "for_s": number, "enabled": bool, "severity": text}}``;
an invalid layer is reported by name and skipped (the layer below applies), so one typo in
one agent's config never silences the rest of the fleet.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Any

from agents_pipeline.core.errors import ValidationError

CONFIG_KEY = "performance.thresholds"
SEVERITIES = ("info", "warning", "critical")
MAX_FOR_S = 7 * 86400


@dataclass(frozen=True)
class Rule:
    name: str
    scope: str            # "agent" or "host"
    metric: str           # the sample metric it reads; a trailing ":" means one per suffix (mount)
    kind: str             # fleet.alerts.kind
    what: str             # words for the alert subject


@dataclass(frozen=True)
class Setting:
    enabled: bool
    above: float | None   # None: no limit (the rule cannot fire)
    for_s: float
    severity: str = "warning"


RULES: dict[str, Rule] = {r.name: r for r in (
    Rule("cpu_percent", "agent", "cpu_percent", "high_cpu", "CPU"),
    Rule("rss_bytes", "agent", "rss_bytes", "high_memory", "resident memory"),
    Rule("process_missing", "agent", "process_found", "process_missing", "process not found"),
    Rule("host_cpu_percent", "host", "cpu_percent", "host_high_cpu", "host CPU"),
    Rule("host_memory_percent", "host", "memory_percent", "host_high_memory", "host memory"),
    Rule("disk_used_percent", "host", "disk_used_percent:", "disk_full", "disk use"),
)}

DEFAULTS: dict[str, Setting] = {
    "cpu_percent": Setting(True, 90.0, 300.0),          # of one core; a multi-threaded agent may need more
    "rss_bytes": Setting(True, None, 300.0),            # no limit until one is configured
    "process_missing": Setting(True, None, 60.0),       # a restart takes seconds, not a minute
    "host_cpu_percent": Setting(True, 95.0, 600.0),
    "host_memory_percent": Setting(True, 95.0, 300.0),
    "disk_used_percent": Setting(True, 90.0, 0.0),      # disks fill, they do not flap
}
AGENT_RULES = tuple(name for name, rule in RULES.items() if rule.scope == "agent")
# Custom metrics (Agent.metric) are judged by rules of their own name, "custom:<metric>", per agent
# or fleet-wide; such a rule has no limit until one is set, and no duration by default.
CUSTOM_PREFIX = "custom:"
CUSTOM_DEFAULT = Setting(True, None, 0.0)
_CUSTOM = re.compile(r"custom:[A-Za-z0-9][A-Za-z0-9_.:/-]{0,199}")


def is_custom(rule: str) -> bool:
    return isinstance(rule, str) and _CUSTOM.fullmatch(rule) is not None


def rule_for(name: str) -> Rule:
    """A built-in rule, or the rule of a custom metric (its metric is its own name)."""
    if name in RULES:
        return RULES[name]
    if not is_custom(name):
        raise KeyError(name)
    return Rule(name, "agent", name, "custom_metric", f"metric {name[len(CUSTOM_PREFIX):]}")


def custom_rules(settings: dict[str, Setting]) -> list[str]:
    return sorted(name for name in settings if is_custom(name))
HOST_RULES = tuple(name for name, rule in RULES.items() if rule.scope == "host")


def _number(value: Any, where: str, *, minimum: float = 0.0, maximum: float = math.inf) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"{where} must be a number, got {value!r}")
    if not minimum <= value <= maximum:
        raise ValidationError(f"{where} must be between {minimum:g} and {maximum:g}, got {value!r}")
    return float(value)


def apply_layer(base: dict[str, Setting], layer: Any, where: str, *, allowed: tuple[str, ...]) -> dict[str, Setting]:
    """``base`` with one layer of overrides applied; raises ValidationError naming the problem."""
    if layer is None:
        return dict(base)
    if not isinstance(layer, dict):
        raise ValidationError(f"{where} must be a JSON object of rule to settings, got {type(layer).__name__}")
    merged = dict(base)
    for rule, fields in layer.items():
        if is_custom(rule):
            merged.setdefault(rule, CUSTOM_DEFAULT)
        elif rule not in RULES:
            raise ValidationError(f"{where}: unknown rule {rule!r} (known: {', '.join(RULES)}, "
                                  f"or {CUSTOM_PREFIX}<metric> for a metric the agent records)")
        elif rule not in allowed:
            raise ValidationError(f"{where}: rule {rule!r} applies to the host, not to one agent")
        if not isinstance(fields, dict):
            raise ValidationError(f"{where}.{rule} must be an object, got {fields!r}")
        unknown = set(fields) - {"above", "for_s", "enabled", "severity"}
        if unknown:
            raise ValidationError(f"{where}.{rule}: unknown setting(s) {', '.join(sorted(unknown))}")
        setting = merged[rule]
        if "above" in fields:
            if rule == "process_missing":
                raise ValidationError(f"{where}.process_missing takes no 'above' (it fires when no process is found)")
            above = fields["above"]
            setting = replace(setting, above=None if above is None else _number(above, f"{where}.{rule}.above"))
        if "for_s" in fields:
            setting = replace(setting, for_s=_number(fields["for_s"], f"{where}.{rule}.for_s", maximum=MAX_FOR_S))
        if "enabled" in fields:
            if not isinstance(fields["enabled"], bool):
                raise ValidationError(f"{where}.{rule}.enabled must be true or false, got {fields['enabled']!r}")
            setting = replace(setting, enabled=fields["enabled"])
        if "severity" in fields:
            if fields["severity"] not in SEVERITIES:
                raise ValidationError(f"{where}.{rule}.severity must be one of {', '.join(SEVERITIES)}")
            setting = replace(setting, severity=fields["severity"])
        merged[rule] = setting
    return merged


@dataclass(frozen=True)
class Effective:
    """The settings in force, and the layers that were refused (reported, not fatal)."""

    fleet: dict[str, Setting]
    per_agent: dict[int, dict[str, Setting]]
    problems: list[str]

    def for_agent(self, agent_id: int) -> dict[str, Setting]:
        return self.per_agent.get(agent_id, self.fleet)


def resolve(global_layer: Any, agent_layers: dict[int, tuple[str, Any]]) -> Effective:
    """Merges the layers; ``agent_layers`` maps agent_id to (agent name, its 'thresholds' value)."""
    problems: list[str] = []
    try:
        fleet = apply_layer(DEFAULTS, global_layer, f"system_config[{CONFIG_KEY!r}]", allowed=tuple(RULES))
    except ValidationError as exc:
        problems.append(f"{exc}; using the built-in defaults")
        fleet = dict(DEFAULTS)
    per_agent: dict[int, dict[str, Setting]] = {}
    for agent_id, (name, layer) in agent_layers.items():
        if layer is None:
            continue
        try:
            per_agent[agent_id] = apply_layer(fleet, layer, f"agent {name!r} config.thresholds", allowed=AGENT_RULES)
        except ValidationError as exc:
            problems.append(f"{exc}; using the fleet settings for this agent")
    return Effective(fleet, per_agent, problems)


def validate_layer(layer: Any, *, agent: bool) -> None:
    """Raises ValidationError for a layer an operator is about to store."""
    apply_layer(DEFAULTS, layer, "thresholds", allowed=AGENT_RULES if agent else tuple(RULES))
