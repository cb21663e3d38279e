"""Readiness: is this installation able to do its job right now?

Each check answers one question an operator asks before trusting the UI (is the environment
set, can we reach the database, is the schema current, does a heartbeat go in and come back
out, are the daemon, schedules and sensors alive and succeeding) and says how to fix what
fails. An agent being down is the product working, so agents' statuses are reported as
information, never as a failure. The Dagster half lives in ``instigators.py``; these are
plain functions over the database, shared by the CLI, the asset and the sensor.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from agents_pipeline.core import migrations, replica, settings
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs, mask_url
from agents_pipeline.core.errors import AgentsPipelineError
from agents_pipeline.core.registry import new_token, token_hash
from agents_pipeline.core.roles import roles
from agents_pipeline.core.shared_state import SharedState

READINESS_AGENT = "agents-pipeline:readiness"
MIN_SERVER_VERSION = 150000


@dataclass(frozen=True)
class Check:
    """One readiness answer: ``name`` is stable (it names the Dagster asset check too)."""

    name: str
    passed: bool
    detail: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _guard(name: str, fn, *args) -> Check:
    """Runs one check; an unexpected error fails that check with its one-line cause."""
    try:
        return fn(*args)
    except Exception as exc:  # a readiness check reports, it does not crash the others
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(name, False, mask_url(text))


def check_environment(url: str) -> Check:
    problems = []
    if sys.version_info[:2] != (3, 11):
        problems.append(f"Python 3.11 is required, this is {sys.version.split()[0]}")
    try:
        connect_kwargs(url)
    except AgentsPipelineError as exc:
        problems.append(str(exc))
    home = os.environ.get("DAGSTER_HOME")
    if home and not os.path.isfile(os.path.join(home, "dagster.yaml")):
        problems.append(f"DAGSTER_HOME={home} holds no dagster.yaml")
    source = settings.DATABASE_URL if os.environ.get(settings.DATABASE_URL) else "the project-local cluster"
    detail = "; ".join(problems) or f"Python {sys.version.split()[0]}, database from {source}, DAGSTER_HOME={home or 'unset'}"
    return Check("environment", not problems, detail)


def check_database(db: Database) -> Check:
    started = time.perf_counter()

    def work(cur):
        cur.execute("SELECT current_setting('server_version_num')::int, current_setting('server_version'), "
                    "pg_database_size(current_database())")
        return tuple(cur.fetchone())

    version_num, version, size = db.transaction(work)
    latency_ms = (time.perf_counter() - started) * 1000
    ok = version_num >= MIN_SERVER_VERSION
    detail = f"PostgreSQL {version} at {db.pool.display_url}, {latency_ms:.0f} ms"
    if not ok:
        detail += "; PostgreSQL 15 or later is required"
    return Check("database", ok, detail, {"latency_ms": round(latency_ms, 2), "database_bytes": int(size)})


def check_schema(db: Database) -> Check:
    with db.connection() as conn:
        current = migrations.current_version(conn)
        conn.rollback()
    latest = migrations.latest_version()
    ok = current == latest
    detail = f"schema at {current}, code at {latest}" + ("" if ok else ": run `agents-pipeline db migrate`")
    return Check("schema_version", ok, detail, {"schema_version": current, "latest_version": latest})


def check_heartbeat_path(db: Database, url: str) -> Check:
    """Registers the readiness agent (paused, so its silence between runs never alerts), gives
    it a fresh token, sends one heartbeat through the agent API with that token and reads it
    back from both the heartbeat table and the registry's ``last_seen``."""
    token = new_token()

    def arm(cur):
        cur.execute(
            """INSERT INTO fleet.agents (name, agent_type, paused, token_hash, token_issued_at)
               VALUES (%s, 'readiness', true, %s, now())
               ON CONFLICT (name) DO UPDATE SET token_hash = EXCLUDED.token_hash, token_issued_at = now(),
                   paused = true, updated_at = now()""", (READINESS_AGENT, token_hash(token)))

    db.transaction(arm)
    probe = f"readiness probe {uuid.uuid4()}"
    started = time.perf_counter()
    with SharedState(url, agent=READINESS_AGENT, token=token, maxconn=1, retry_window=10) as state:
        received = state.heartbeat(message=probe, timeout=15)
    write_ms = (time.perf_counter() - started) * 1000

    def read(cur):
        cur.execute(
            """SELECT h.received_at, a.last_seen, a.last_message FROM fleet.heartbeats h
               JOIN fleet.agents a USING (agent_id)
               WHERE a.name = %s AND h.message = %s AND h.received_at >= %s - interval '1 second'""",
            (READINESS_AGENT, probe, received))
        return cur.fetchone()

    row = db.transaction(read)
    if row is None:
        return Check("heartbeat_path", False, f"heartbeat stored at {received.isoformat()} but not read back")
    ok = row[1] == row[0] and row[2] == probe
    detail = (f"heartbeat of {READINESS_AGENT} written in {write_ms:.0f} ms and read back"
              if ok else f"heartbeat stored but the registry's last_seen is {row[1]}, not {row[0]}")
    return Check("heartbeat_path", ok, detail, {"heartbeat_write_ms": round(write_ms, 2)})


def check_agent_boundary(db: Database) -> Check:
    """What the schema's migrations could not do without a superuser, and so what an agent could
    still abuse: take advisory locks (stalling `db migrate` and archival), fill the disk with
    temporary files, or hold an agent row locked with no session able to end it."""
    names = roles()

    def work(cur):
        cur.execute(r"""SELECT has_function_privilege(%s, 'pg_catalog.pg_advisory_lock(bigint)', 'EXECUTE'),
                              EXISTS (SELECT 1 FROM pg_db_role_setting
                                      WHERE setrole = %s::regrole AND setdatabase = 0
                                        AND EXISTS (SELECT 1 FROM unnest(setconfig) c WHERE c LIKE 'temp\_file\_limit=%%')),
                              coalesce(pg_has_role(to_regrole(%s), 'pg_signal_backend', 'MEMBER'), false)""",
                    (names.agent, names.agent, names.signaller))
        return cur.fetchone()

    advisory, temp_limit, signaller = db.transaction(work)
    problems = []
    if advisory:
        problems.append("agents can take advisory locks and stall `db migrate` and archival")
    if not temp_limit:
        problems.append("the agent login has no temp_file_limit")
    if not signaller:
        problems.append("held agent rows are reported but their sessions cannot be ended (no signaller role)")
    detail = ("; ".join(problems) + ": a superuser must run `agents-pipeline db grant-agent` (docs/security.md)"
              if problems else "agents cannot take advisory locks; temp_file_limit set; held rows can be ended")
    return Check("agent_boundary", not problems, detail,
                 {"agent_advisory_locks": bool(advisory), "agent_temp_file_limit": bool(temp_limit),
                  "signaller_role": bool(signaller)})


def check_read_replica() -> Check:
    """The display reads' replica (AGENTS_PIPELINE_READ_DATABASE_URL), when one is set: it
    answers, is a standby, and is behind by no more than AGENTS_PIPELINE_REPLICA_MAX_LAG_S."""
    url = replica.read_url()
    if url is None:
        return Check("read_replica", True, f"no read replica configured ({settings.READ_DATABASE_URL} unset): "
                                           "display reads go to the primary")
    limit = settings.replica_max_lag_s()
    db = Database(url, maxconn=1, retry_window=3, application_name="agents_pipeline:readiness")
    try:
        found = replica.lag(db)
    finally:
        db.close()
    metadata = {"replica_lag_s": round(found.lag_s, 3) if found.lag_s is not None else -1.0,
                "replica_replay_pending_bytes": found.replay_pending_bytes}
    if not found.in_recovery:
        return Check("read_replica", False, f"{settings.READ_DATABASE_URL} names a server that is not a standby "
                                            "(a primary, or a standby promoted by a failover): point it at a "
                                            "replica, or unset it", metadata)
    assert found.lag_s is not None
    ok = found.lag_s <= limit
    return Check("read_replica", ok, f"replica {'within' if ok else 'BEHIND'} its bound: lag {found.lag_s:.1f} s "
                                     f"(at most {limit:.0f} s, {settings.REPLICA_MAX_LAG})", metadata)


def agent_summary(db: Database) -> dict[str, int]:
    """Agents per status, for information only (the readiness agent itself excluded)."""

    def work(cur):
        cur.execute("SELECT status, count(*) FROM fleet.agents WHERE name <> %s GROUP BY status", (READINESS_AGENT,))
        return {row[0]: int(row[1]) for row in cur.fetchall()}

    return db.transaction(work)


def database_checks(url: str) -> tuple[list[Check], dict[str, int]]:
    """Environment, database, schema and heartbeat path; later checks are skipped (failed with
    a reason) when the database cannot be reached, rather than each timing out in turn."""
    checks = [_guard("environment", check_environment, url)]
    try:
        db = Database(url, maxconn=2, retry_window=3, application_name="agents_pipeline:readiness")
    except AgentsPipelineError as exc:
        return [*checks, Check("database", False, str(exc))], {}
    try:
        checks.append(_guard("database", check_database, db))
        if not checks[-1].passed:
            skipped = "skipped: the database check failed"
            return [*checks, *(Check(name, False, skipped)
                               for name in ("schema_version", "heartbeat_path", "agent_boundary")),
                    _guard("read_replica", check_read_replica)], {}
        checks.append(_guard("schema_version", check_schema, db))
        checks.append(_guard("heartbeat_path", check_heartbeat_path, db, url))
        checks.append(_guard("agent_boundary", check_agent_boundary, db))
        checks.append(_guard("read_replica", check_read_replica))
        try:
            summary = agent_summary(db)
        except AgentsPipelineError:
            summary = {}
        return checks, summary
    finally:
        db.close()
