"""The sampler's database side: which agents are on this host, the previous counters, the rows.

Set-based: the registry is read in one query, the samples are written in one INSERT over
arrays, the per-host state is one row read and written once per sample.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from agents_pipeline.defs.performance.collect import Target
from agents_pipeline.defs.performance.derive import Row
from agents_pipeline.defs.performance.thresholds import CONFIG_KEY


@dataclass(frozen=True)
class RegisteredAgent:
    target: Target
    host: str | None
    paused: bool
    silenced_until: datetime | None
    thresholds: Any               # the agent's config -> 'thresholds', unvalidated

    @property
    def locatable(self) -> bool:
        t = self.target
        return t.pid is not None or bool(t.pidfile) or bool(t.match)

    def is_local(self, host: str) -> bool:
        """NULL (registered without a host) or this host's name, in any case, means here."""
        return self.host is None or self.host.strip().lower() == host.lower()


def registered_agents(conn: sa.Connection) -> list[RegisteredAgent]:
    rows = conn.execute(sa.text(
        """SELECT agent_id, name, host, paused, silenced_until, process_pid, process_pidfile,
                  process_match, config -> 'thresholds' AS thresholds
           FROM fleet.agents WHERE NOT placeholder ORDER BY agent_id"""))
    return [RegisteredAgent(Target(r.agent_id, r.name, r.process_pid, r.process_pidfile, r.process_match),
                            r.host, r.paused, r.silenced_until, r.thresholds) for r in rows]


def global_thresholds(conn: sa.Connection) -> Any:
    return conn.execute(sa.text("SELECT value FROM fleet.system_config WHERE key = :k"), {"k": CONFIG_KEY}).scalar()


def lock_state(conn: sa.Connection, host: str) -> tuple[datetime | None, dict[str, Any] | None]:
    """The previous sample's time and counters for ``host``, row-locked until commit so that
    two samplers on one host (the sensor and a CLI call) take turns instead of both
    computing rates against the same baseline."""
    conn.execute(sa.text(
        "INSERT INTO fleet.perf_sampler_state (host, sampled_at, counters) VALUES (:h, '-infinity', '{}') "
        "ON CONFLICT (host) DO NOTHING"), {"h": host})
    row = conn.execute(sa.text(
        "SELECT sampled_at, counters, isfinite(sampled_at) AS known FROM fleet.perf_sampler_state "
        "WHERE host = :h FOR UPDATE"), {"h": host}).one()
    return (row.sampled_at, row.counters) if row.known else (None, None)


def save_state(conn: sa.Connection, host: str, at: datetime, counters: dict[str, Any]) -> None:
    conn.execute(sa.text(
        "UPDATE fleet.perf_sampler_state SET sampled_at = :at, counters = CAST(:c AS jsonb), updated_at = now() "
        "WHERE host = :h"), {"h": host, "at": at, "c": json.dumps(counters)})


_INSERT = sa.text("""
    INSERT INTO fleet.perf_samples (sampled_at, host, agent_id, metric, value, source)
    SELECT :at, :host, t.agent_id, t.metric, t.value, 'sampler'
    FROM unnest(CAST(:agents AS bigint[]), CAST(:metrics AS text[]), CAST(:values AS double precision[]))
         AS t(agent_id, metric, value)""")


def insert_samples(conn: sa.Connection, host: str, at: datetime, rows: list[Row]) -> int:
    """One statement for the whole sample. A missing daily partition (the janitor has not run)
    is created through fleet.ensure_current_partitions and the insert retried once."""
    params = {"at": at, "host": host, "agents": [r[0] for r in rows], "metrics": [r[1] for r in rows],
              "values": [float(r[2]) for r in rows]}
    savepoint = conn.begin_nested()
    try:
        result = conn.execute(_INSERT, params)
        savepoint.commit()
    except DBAPIError as exc:
        savepoint.rollback()
        if getattr(exc.orig, "pgcode", None) != "23514" or "no partition" not in str(exc.orig):
            raise
        conn.execute(sa.text("SELECT fleet.ensure_current_partitions()"))
        result = conn.execute(_INSERT, params)
    return result.rowcount


def latest_remote(conn: sa.Connection, agent_ids: list[int], metrics: list[str], since: datetime) -> dict[tuple[int, str], tuple[float, datetime, str]]:
    """The newest value each remote agent reported for each metric since ``since``."""
    if not agent_ids:
        return {}
    rows = conn.execute(sa.text(
        """SELECT DISTINCT ON (agent_id, metric) agent_id, metric, value, sampled_at, host
           FROM fleet.perf_samples
           WHERE source = 'remote' AND sampled_at >= :since AND agent_id = ANY(:ids) AND metric = ANY(:metrics)
           ORDER BY agent_id, metric, sampled_at DESC"""),
        {"ids": agent_ids, "metrics": metrics, "since": since})
    return {(r.agent_id, r.metric): (r.value, r.sampled_at, r.host) for r in rows}
