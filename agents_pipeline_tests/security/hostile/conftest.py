"""The hostile-agent timeline, run once for the whole package: a fresh database with 20 honest
agents, a silent one and mallory, each on its own login; every statement logged; an evaluator
loop delivering alerts to a real webhook receiver; an idle phase, then the attack phase.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

from agents_pipeline.core import registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.roles import roles
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.defs.alerts.channels import ChannelSettings
from agents_pipeline.defs.alerts.sender import send_pending
from agents_pipeline.defs.heartbeats.health import run_evaluation
from agents_pipeline.defs.heartbeats.settings import HealthSettings
from agents_pipeline_tests import pg
from agents_pipeline_tests.alerts.servers import webhook_receiver
from agents_pipeline_tests.security.conftest import role_url
from agents_pipeline_tests.security.hostile.mallory import Mallory
from agents_pipeline_tests.security.hostile.timeline import (
    ATTACK_BEATS,
    HONEST,
    IDLE_BEATS,
    LOCK_HOLD_S,
    PACE_S,
    QUIET_GRACE_S,
    QUIET_PERIOD_S,
    Timeline,
)


def _honest(timeline: Timeline, name: str, beats: int, sink: list[float]) -> None:
    try:
        with SharedState(timeline.logins[name], agent=name, token=timeline.tokens[name], maxconn=1,
                         retry_window=5) as state:
            for i in range(beats):
                started = time.perf_counter()
                state.heartbeat(message=f"beat {i}")
                sink.append((time.perf_counter() - started) * 1000)
                time.sleep(PACE_S)
    except BaseException as exc:  # noqa: BLE001
        timeline.honest_errors.append(f"{name}: {exc!r}")


def _phase(timeline: Timeline, beats: int, sink: list[float], during: Callable[[], None] | None = None) -> None:
    threads = [threading.Thread(target=_honest, args=(timeline, f"honest-{i:02d}", beats, sink))
               for i in range(HONEST)]
    if during is not None:
        threads.append(threading.Thread(target=during))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)


def _evaluator(timeline: Timeline, engine: sa.Engine, stop: threading.Event) -> None:
    settings = HealthSettings(lock_hold_s=LOCK_HOLD_S, throttle_alert_s=2.0, collapse_min_fleet=1000)
    while not stop.is_set():
        try:
            run_evaluation(engine, settings)
            send_pending(engine, ChannelSettings.from_env(), worker="hostile-suite")
        except Exception as exc:  # noqa: BLE001
            timeline.evaluator_errors.append(repr(exc))
        stop.wait(0.5)


def _log_every_statement(cluster, dbname: str, logins: list[str]) -> None:
    """log_statement=all for every login of this database, the agent logins included (their own
    role setting is 'none'; a role-in-database setting overrides it)."""
    admin = pg.admin_connect(cluster)
    try:
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{dbname}" SET log_statement = \'all\'')
            for login in [roles().agent, *logins]:
                cur.execute(f'ALTER ROLE "{login}" IN DATABASE "{dbname}" SET log_statement = \'all\'')
    finally:
        admin.close()


def _cli_paths(t: Timeline) -> list[str]:
    """The operator's and an agent's command-line paths: register, rotate, heartbeat, status."""
    exe = os.path.join(os.path.dirname(sys.executable), "agents-pipeline")
    env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": t.url}
    env.pop("AGENTS_PIPELINE_AGENT_TOKEN", None)
    out = subprocess.run([exe, "agents", "register", "cli-agent", "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout
    t.tokens["cli-agent (first)"] = json.loads(out)["token"]
    t.tokens["cli-agent"] = subprocess.run([exe, "agents", "rotate-token", "cli-agent"], env=env, check=True,
                                           capture_output=True, text=True, timeout=60).stdout.strip()
    agent_env = {**env, "AGENTS_PIPELINE_DATABASE_URL": t.agent_url,
                 "AGENTS_PIPELINE_AGENT_TOKEN": t.tokens["cli-agent"]}
    beat = subprocess.run([exe, "heartbeat", "cli-agent", "--message", "from the shell"], env=agent_env,
                          capture_output=True, text=True, timeout=60)
    return [beat.stdout.strip(), beat.stderr.strip()]


@pytest.fixture(scope="package")
def timeline(pg_cluster, pg_template) -> Iterator[Timeline]:
    dbname = pg.fresh_database(pg_cluster, pg_template)
    url = pg_cluster.url(dbname)
    engine = sa.create_engine(url, pool_size=2)
    db = Database(url, maxconn=2)
    stop = threading.Event()
    try:
        db.transaction(lambda cur: cur.execute("SELECT fleet.apply_security()"))
        tokens = {f"honest-{i:02d}": registry.register_agent(db, f"honest-{i:02d}", period_s=5, grace_s=5).token
                  for i in range(HONEST)}
        tokens["quiet-one"] = registry.register_agent(db, "quiet-one", period_s=QUIET_PERIOD_S,
                                                      grace_s=QUIET_GRACE_S).token
        tokens["mallory"] = registry.register_agent(db, "mallory", period_s=1, grace_s=1).token
        logins = dict(db.transaction(lambda cur: (cur.execute(
            "SELECT name, db_login FROM fleet.agents WHERE db_login IS NOT NULL"), cur.fetchall())[1]))
        _log_every_statement(pg_cluster, dbname, list(logins.values()))
        # The honest agents beat fast to give 1,000 samples each; an operator lifts their limit.
        db.transaction(lambda cur: cur.execute("""
            INSERT INTO fleet.rate_limit_overrides (agent_id, kind, rate_per_s, burst)
            SELECT agent_id, 'heartbeats', 1000, 1000 FROM fleet.agents WHERE name LIKE 'honest-%'"""))
        t = Timeline(url, role_url(url, pg_cluster, roles().agent), tokens,
                     {name: role_url(url, pg_cluster, login) for name, login in logins.items()})
        with SharedState(t.logins["honest-00"], agent="honest-00", token=tokens["honest-00"]) as s:
            s.set("honest-00/state", {"ok": True})
        with pytest.MonkeyPatch.context() as mp, webhook_receiver() as hook:
            mp.setenv("AGENTS_PIPELINE_ALERT_WEBHOOK_URL", hook.url)
            evaluator = threading.Thread(target=_evaluator, args=(t, engine, stop))
            evaluator.start()
            for name in ("quiet-one", "mallory"):
                with SharedState(t.logins[name], agent=name, token=tokens[name]) as s:
                    received = s.heartbeat(message="hello")
                if name == "quiet-one":
                    t.quiet_deadline = received + timedelta(seconds=QUIET_PERIOD_S + QUIET_GRACE_S)
            _phase(t, IDLE_BEATS, t.idle_ms)
            _phase(t, ATTACK_BEATS, t.attack_ms, during=Mallory(t).run)
            t.outcomes["cli"] = _cli_paths(t)
            time.sleep(2)  # one more evaluation and delivery after the attacks
            stop.set()
            evaluator.join(60)
            t.webhook = list(hook.received)
        yield t
    finally:
        stop.set()
        engine.dispose()
        db.close()
        pg.drop_database(pg_cluster, dbname)
