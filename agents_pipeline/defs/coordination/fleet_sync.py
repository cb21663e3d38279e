"""Plan and apply a fleet file against the registry, and export the registry as one.

As Terraform's plan and apply: ``plan`` compares and changes nothing; ``apply`` makes the
registry match in one transaction (under an advisory lock, so two applies do not interleave) and
is idempotent, a second apply finding nothing to do. Only agents a fleet file declared
(``fleet_managed``, sql/0016) are ever removed, and only when asked (``prune``); removal retires
the agent (token, login and ping key stop working, history kept). A declared agent that was
registered by hand is adopted as it is, keeping its token.

The file owns an agent's type, host, period, grace, capabilities, process locator and three keys
of its config: ``thresholds`` (the performance domain's per-agent layer), ``silence_windows`` and
``alert_routes``. Plain functions over a psycopg2 cursor: the CLI, the ``fleet_config`` asset
and the tests call them alike.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

from agents_pipeline.core import registry
from agents_pipeline.core.registry import Registration
from agents_pipeline.defs.alerts.channels import configured_channels
from agents_pipeline.defs.coordination.fleet_file import NAME, AgentSpec, FleetFile

LOCK_KEY = 0x666C656574  # "fleet": one fleet apply at a time
CONFIG_KEYS = ("thresholds", "silence_windows", "alert_routes")
COMPARED = tuple(f.name for f in fields(AgentSpec) if f.name != "name")

_REGISTRY = """
    SELECT agent_id, name, agent_type, host, extract(epoch FROM period)::float8,
           extract(epoch FROM grace)::float8, capabilities, process_pid, process_pidfile, process_match,
           config, fleet_managed, retired_at IS NOT NULL, agent_type = 'pipeline'
    FROM fleet.agents ORDER BY name"""


@dataclass(frozen=True)
class Registered:
    agent_id: int
    spec: AgentSpec
    managed: bool
    retired: bool
    pipeline: bool       # the pipeline's own agents: never declared, exported or removed


@dataclass
class Plan:
    added: list[AgentSpec] = field(default_factory=list)      # new, or retired and declared again
    changed: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)  # name -> field -> (now, file)
    removed: list[str] = field(default_factory=list)          # declared earlier, no longer in the file
    unmanaged: list[str] = field(default_factory=list)        # registered by hand, not in the file: left alone
    warnings: list[str] = field(default_factory=list)

    @property
    def has_changes(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "added": [a.as_dict() for a in self.added],
            "changed": [{"name": n, "changes": {k: {"from": a, "to": b} for k, (a, b) in c.items()}}
                        for n, c in sorted(self.changed.items())],
            "removed": self.removed, "unmanaged": self.unmanaged, "warnings": self.warnings,
            "has_changes": self.has_changes,
        }


def _spec_from_row(row: tuple) -> Registered:
    (agent_id, name, agent_type, host, period_s, grace_s, caps, pid, pidfile, match, config, managed,
     retired, pipeline) = row
    process = ("pid", pid) if pid is not None else ("pidfile", pidfile) if pidfile is not None else \
        ("match", match) if match is not None else None
    config = config or {}
    spec = AgentSpec(
        name=name, type=agent_type, host=host, period_s=period_s, grace_s=grace_s,
        capabilities=tuple(sorted(caps or ())), process=process, thresholds=config.get("thresholds"),
        silence_windows=tuple(config.get("silence_windows") or ()),
        alert_routes=tuple(sorted(config.get("alert_routes") or ())))
    return Registered(agent_id, spec, managed, retired, pipeline)


def read_registry(cur) -> dict[str, Registered]:
    cur.execute(_REGISTRY)
    return {row[1]: _spec_from_row(row) for row in cur.fetchall()}


def _json_safe(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def plan(cur, fleet: FleetFile, *, channels: list[str] | None = None) -> Plan:
    """The difference between the registry and the file; changes nothing."""
    current = read_registry(cur)
    out = Plan()
    for name, want in sorted(fleet.agents.items()):
        have = current.get(name)
        if have is None or have.retired:
            out.added.append(want)
            continue
        diff = {f: (_json_safe(getattr(have.spec, f)), _json_safe(getattr(want, f)))
                for f in COMPARED if getattr(have.spec, f) != getattr(want, f)}
        if not have.managed:
            diff["managed"] = (False, True)
        if diff:
            out.changed[name] = diff
    for name, have in sorted(current.items()):
        if name in fleet.agents or have.retired or have.pipeline:
            continue
        (out.removed if have.managed else out.unmanaged).append(name)
    live = set(channels if channels is not None else configured_channels())
    for name, want in sorted(fleet.agents.items()):
        missing = sorted(set(want.alert_routes) - live)
        if missing:
            out.warnings.append(f"agent {name!r}: alert route(s) {', '.join(missing)} not configured in this "
                                "environment (see docs/alerts.md)")
    return out


def _config(cur, agent_id: int | None, spec: AgentSpec) -> str:
    """The agent's config with the file's keys replaced (its other keys kept), as JSON text."""
    base: dict[str, Any] = {}
    if agent_id is not None:
        cur.execute("SELECT config FROM fleet.agents WHERE agent_id = %s", (agent_id,))
        base = {k: v for k, v in (cur.fetchone()[0] or {}).items() if k not in CONFIG_KEYS}
    return json.dumps({**base, **spec.config_keys()})


def _columns(spec: AgentSpec) -> dict[str, Any]:
    kind, value = spec.process or (None, None)
    return {"agent_type": spec.type, "host": spec.host, "period_s": spec.period_s, "grace_s": spec.grace_s,
            "capabilities": list(spec.capabilities), "pid": value if kind == "pid" else None,
            "pidfile": value if kind == "pidfile" else None, "match": value if kind == "match" else None}


_UPDATE = """
    UPDATE fleet.agents SET agent_type = %(agent_type)s, host = %(host)s,
        period = make_interval(secs => %(period_s)s), grace = make_interval(secs => %(grace_s)s),
        capabilities = %(capabilities)s::text[], process_pid = %(pid)s, process_pidfile = %(pidfile)s,
        process_match = %(match)s, config = %(config)s::jsonb, fleet_managed = true, updated_at = now()
    WHERE agent_id = %(agent_id)s"""


def apply(cur, fleet: FleetFile, *, prune: bool = False, channels: list[str] | None = None
          ) -> tuple[Plan, list[Registration]]:
    """Makes the registry match the file in the caller's transaction; returns what it did and
    the new agents' registrations (their tokens, shown once)."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    result = plan(cur, fleet, channels=channels)
    current = read_registry(cur)
    issued: list[Registration] = []
    for spec in result.added:
        old = current.get(spec.name)
        token = registry.new_token()
        if old is None:
            cur.execute(
                """INSERT INTO fleet.agents (name, token_hash, token_issued_at) VALUES (%s, %s, now())
                   RETURNING agent_id""", (spec.name, registry.token_hash(token)))
            agent_id = cur.fetchone()[0]
        else:   # retired and declared again: back, with a new token and ping key
            agent_id = old.agent_id
            cur.execute("""UPDATE fleet.agents SET retired_at = NULL, paused = false, token_hash = %s,
                               token_issued_at = now(), ping_key = DEFAULT WHERE agent_id = %s""",
                        (registry.token_hash(token), agent_id))
        cur.execute(_UPDATE, {**_columns(spec), "config": _config(cur, None, spec), "agent_id": agent_id})
        login = registry.ensure_login(cur, agent_id, token)
        cur.execute("SELECT ping_key FROM fleet.agents WHERE agent_id = %s", (agent_id,))
        issued.append(Registration(agent_id, spec.name, token, login, cur.fetchone()[0]))
    for name in result.changed:
        spec, agent_id = fleet.agents[name], current[name].agent_id
        cur.execute(_UPDATE, {**_columns(spec), "config": _config(cur, agent_id, spec), "agent_id": agent_id})
    if prune:
        for name in result.removed:
            retire(cur, current[name].agent_id)
    return result, issued


def retire(cur, agent_id: int) -> None:
    """Takes an agent out of the fleet without losing its history: no token, login or ping key
    that works, paused (no alerts), no capabilities, and the tasks it holds back in the queue."""
    cur.execute("""UPDATE fleet.agents SET retired_at = now(), paused = true, token_hash = NULL,
                       ping_key = DEFAULT, capabilities = '{}', updated_at = now()
                   WHERE agent_id = %s RETURNING db_login""", (agent_id,))
    login = cur.fetchone()[0]
    if login is not None:
        from psycopg2 import sql

        cur.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(login)))
    cur.execute("""SELECT fleet.release_tasks(array_agg(task_id), array_agg(attempt_id),
                                              'its agent was retired (fleet apply --prune)')
                   FROM fleet.tasks WHERE claimed_by = %s AND state = 'claimed'""", (agent_id,))


def export(cur) -> tuple[list[AgentSpec], list[str]]:
    """The registry's agents as a fleet file declares them, and the names a file cannot hold
    (skipped, with the reason); retired agents and the pipeline's own are left out."""
    agents, skipped = [], []
    for name, have in read_registry(cur).items():
        if have.retired or have.pipeline:
            continue
        if not NAME.fullmatch(name):
            skipped.append(f"{name!r}: a name a fleet file cannot hold (letters, digits and _ . : @ - only)")
            continue
        agents.append(have.spec)
    return agents, skipped
