"""The hostile-agent suite: every attack on the agent boundary, run as the agent login holding a
valid token for its own agent ('mallory'), while 20 honest agents heartbeat through SharedState
as the same login and one honest agent goes silent. A real evaluator loop (health evaluation,
boundary checks, delivery to a real webhook receiver) runs the whole time.

One timeline is shared by the tests below (a module fixture): an idle phase measures the honest
heartbeats' latency, then the attack phase measures it again while mallory attacks.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa

from agents_pipeline.alerts.channels import ChannelSettings
from agents_pipeline.alerts.sender import send_pending
from agents_pipeline.core import migrations, registry
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.registry import token_proof
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.heartbeats.health import run_evaluation
from agents_pipeline.heartbeats.settings import HealthSettings
from agents_pipeline.security.roles import roles
from agents_pipeline_tests import pg
from agents_pipeline_tests.alerts.servers import webhook_receiver
from agents_pipeline_tests.security.conftest import role_url

HONEST = 20
IDLE_BEATS = 200
ATTACK_BEATS = 1000
PACE_S = 0.02
LOCK_HOLD_S = 3.0
QUIET_PERIOD_S, QUIET_GRACE_S = 2.0, 1.0


@dataclass
class Timeline:
    url: str
    agent_url: str
    tokens: dict[str, str]
    logins: dict[str, str] = field(default_factory=dict)        # agent -> its own login's URL
    idle_ms: list[float] = field(default_factory=list)
    attack_ms: list[float] = field(default_factory=list)
    honest_errors: list[str] = field(default_factory=list)
    outcomes: dict[str, Any] = field(default_factory=dict)      # attack -> what it got back
    webhook: list[dict[str, Any]] = field(default_factory=list)
    webhook_arrivals: dict[str, float] = field(default_factory=dict)   # idempotency key -> time.time()
    quiet_deadline: datetime | None = None
    evaluator_errors: list[str] = field(default_factory=list)


def _refusal(fn: Callable[[], Any]) -> str:
    """The error text an attack got back, or 'ACCEPTED' when it was not refused."""
    try:
        fn()
    except psycopg2.Error as exc:
        return f"{exc.pgcode}: {str(exc.pgerror or exc).strip().splitlines()[0]}"
    except Exception as exc:  # noqa: BLE001 - SharedState's typed errors: the message is the point
        return f"{type(exc).__name__}: {exc}"
    return "ACCEPTED"


class Mallory:
    """The attacker: the agent login, its own valid token, raw SQL where SharedState would check."""

    def __init__(self, timeline: Timeline) -> None:
        self.t = timeline
        self.proof = token_proof(timeline.tokens["mallory"])
        self.names = [n for n in timeline.tokens if n != "mallory"]

    def connect(self):
        conn = psycopg2.connect(**connect_kwargs(self.t.logins["mallory"]))
        conn.autocommit = True
        return conn

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall() if cur.description else []
        finally:
            conn.close()

    BEATS = """SELECT ord, error, retry_after_s FROM fleet.record_heartbeats(%s::text[], %s::bytea[],
               NULL, NULL, %s::text[], NULL)"""

    def hold_every_row(self) -> None:
        """The issue's attack: every agent's name with bad tokens (its own valid), inside a
        transaction kept open. It can lock only its own row; the evaluator ends it."""
        conn = self.connect()
        conn.autocommit = False
        out = self.t.outcomes
        try:
            with conn.cursor() as cur:
                cur.execute("SET idle_in_transaction_session_timeout = 0; SET statement_timeout = 0")
                names = [*self.names, "mallory"]
                proofs = [b"\x00" * 32] * len(self.names) + [self.proof]
                cur.execute(self.BEATS, (names, proofs, ["pwned"] * len(names)))
                rows = cur.fetchall()
                out["hold: refused for others"] = sorted({r[1] for r in rows[:-1]})
                out["hold: own item"] = rows[-1][1]
                started = time.monotonic()
                try:
                    cur.execute("SELECT pg_sleep(60)")
                    out["hold: ended after s"] = None
                except psycopg2.Error as exc:
                    out["hold: ended after s"] = time.monotonic() - started
                    out["hold: ended with"] = str(exc).strip().splitlines()[0]
        finally:
            conn.close()

    def flood(self, seconds: float) -> None:
        """Heartbeats far past its rate limit: refused per item with a retry time, not an error."""
        refused, stored, retry = 0, 0, []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rows = self.sql(self.BEATS, (["mallory"] * 50, [self.proof] * 50, ["flood"] * 50))
            stored += sum(1 for r in rows if r[1] is None)
            refused += sum(1 for r in rows if r[1] and r[1].startswith("rate limited"))
            retry += [r[2] for r in rows if r[2] is not None]
            time.sleep(0.2)
        self.t.outcomes["flood"] = (stored, refused, min(retry) if retry else None)

    def caps_and_trespass(self) -> None:
        out, p, sql = self.t.outcomes, self.proof, self.sql
        big = "x" * 9000
        out["batch over 5000"] = _refusal(lambda: sql(self.BEATS, (["mallory"] * 5001, [p] * 5001, [None] * 5001)))
        out["message over 8192 bytes"] = sql(self.BEATS, (["mallory"], [p], ["é" * 4200]))[0][1]
        out["kv value over 1 MiB"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.kv_set('mallory', %s, 'mallory/big', %s::jsonb, NULL, NULL)", (p, f'"{"x" * 1100000}"')))
        out["conversation over 1 MiB"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.record_conversation('mallory', %s, %s::uuid, NULL, 'm', %s, 'r', 1, 1, 0, 1, NULL, NULL, NULL)",
            (p, str(uuid.uuid4()), "x" * 1100000)))
        out["101 metric keys"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.report_metrics('mallory', %s, 'h', %s::jsonb, NULL)",
            (p, "{" + ",".join(f'"m{i}": 1' for i in range(101)) + "}")))
        out["lease of 2 hours"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.claim_messages('mallory', %s, 10, interval '2 hours')", (p,)))
        out["help context over 16 KiB"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.submit_help_request('mallory', %s, 'q', %s::jsonb)", (p, f'{{"k": "{"x" * 20000}"}}')))
        out["help question over 8192 bytes"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.submit_help_request('mallory', %s, %s, NULL)", (p, big)))
        out["migration lock"] = _refusal(lambda: sql("SELECT pg_advisory_lock(%s)", (migrations.LOCK_KEY,)))
        out["archive lock"] = _refusal(lambda: sql(
            "SELECT pg_try_advisory_lock(hashtext('fleet.archive'), hashtext('heartbeats'))"))
        out["read another agent's key"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.kv_get('mallory', %s, 'honest-00/state')", (p,)))
        out["write another agent's key"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.kv_set('mallory', %s, 'honest-00/state', '\"pwned\"', NULL, NULL)", (p,)))
        out["read a key without a token"] = _refusal(lambda: sql("SELECT * FROM fleet.kv_get(NULL, NULL, 'honest-00/state')"))
        out["unknown agent"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.kv_get('no-such-agent', %s, 'no-such-agent/x')", (p,)))
        out["wrong token"] = _refusal(lambda: sql(
            "SELECT * FROM fleet.kv_get('honest-00', %s, 'honest-00/x')", (p,)))
        out["claim others' messages"] = sql("SELECT message_id FROM fleet.claim_messages('mallory', %s, 100, interval '1 minute')", (p,))
        out["read another's help request"] = sql(
            "SELECT * FROM fleet.get_help_request('mallory', %s, (SELECT 1))", (p,))
        out["end a session"] = _refusal(lambda: sql("SELECT fleet.end_agent_session(pg_backend_pid())"))
        out["signal a backend"] = _refusal(lambda: sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() LIMIT 1"))
        out["lift temp_file_limit"] = _refusal(lambda: sql("SET temp_file_limit = -1"))
        out["turn activity tracking on"] = _refusal(lambda: sql("SET track_activities = on"))
        out["read token hashes"] = _refusal(lambda: sql("SELECT token_hash FROM fleet.agents"))

    def connection_flood(self) -> None:
        """As many connections as the server will give its login, held while honest agents beat."""
        held, error = [], "never refused"
        try:
            for _ in range(60):
                held.append(self.connect())
        except psycopg2.OperationalError as exc:
            error = str(exc).strip().splitlines()[-1]
        self.t.outcomes["flood: connections"] = (len(held), error)
        time.sleep(3)
        for conn in held:
            conn.close()

    def stolen_token(self) -> None:
        """Its own login presenting another agent's valid token (stolen from that agent's host)."""
        stolen = token_proof(self.t.tokens["honest-01"])
        rows = self.sql(self.BEATS, (["honest-01"], [stolen], ["pwned"]))
        self.t.outcomes["stolen token, own login"] = rows[0][1]
        self.t.outcomes["stolen token, kv"] = _refusal(lambda: self.sql(
            "SELECT * FROM fleet.kv_set('honest-01', %s, 'honest-01/x', '1', NULL, NULL)", (stolen,)))

    def run(self) -> None:
        try:
            self.connection_flood()
            self.stolen_token()
            self.hold_every_row()
            self.flood(3.5)
            self.caps_and_trespass()
        except BaseException as exc:  # noqa: BLE001 - reported by the tests
            self.t.outcomes["mallory crashed"] = repr(exc)


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


@pytest.fixture(scope="module")
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


def _query(t: Timeline, sql: str) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(t.url))
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_the_attacker_ran_and_the_evaluator_never_failed(timeline):
    assert "mallory crashed" not in timeline.outcomes, timeline.outcomes.get("mallory crashed")
    assert timeline.evaluator_errors == []


def test_every_honest_heartbeat_is_stored(timeline):
    assert timeline.honest_errors == []
    rows = _query(timeline, """SELECT a.name, count(h.*) FROM fleet.agents a
                               LEFT JOIN fleet.heartbeats h ON h.agent_id = a.agent_id
                               WHERE a.name LIKE 'honest-%' GROUP BY a.name""")
    assert len(rows) == HONEST
    assert {n for _, n in rows} == {IDLE_BEATS + ATTACK_BEATS}


def test_honest_latency_under_attack_stays_within_twice_idle_plus_50_ms(timeline):
    idle = statistics.quantiles(timeline.idle_ms, n=100)[98]
    attack = statistics.quantiles(timeline.attack_ms, n=100)[98]
    assert len(timeline.attack_ms) >= HONEST * ATTACK_BEATS
    assert attack <= 2 * idle + 50, f"p99 idle {idle:.1f} ms, under attack {attack:.1f} ms"


def test_the_silent_agent_goes_down_and_its_alert_arrives_within_30_s(timeline):
    opened = [p for p in timeline.webhook if p.get("agent") == "quiet-one" and p.get("event") == "opened"]
    assert len(opened) == 1, timeline.webhook
    opened_at = datetime.fromisoformat(opened[0]["opened_at"])
    assert opened_at == timeline.quiet_deadline
    status = _query(timeline, "SELECT status FROM fleet.agents WHERE name = 'quiet-one'")
    assert status == [("down",)]
    delivered = _query(timeline, """SELECT max(n.delivered_at) FROM fleet.notifications n
                                    JOIN fleet.alerts a USING (alert_id) JOIN fleet.agents g USING (agent_id)
                                    WHERE g.name = 'quiet-one' AND n.channel = 'webhook'""")[0][0]
    assert delivered - timeline.quiet_deadline < timedelta(seconds=30)


def test_holding_every_row_locks_only_its_own_and_its_session_is_ended(timeline):
    out = timeline.outcomes
    refused = out["hold: refused for others"]
    assert len(refused) == HONEST + 1 and all(e.startswith("token refused for agent") for e in refused)
    assert out["hold: own item"] is None
    assert out["hold: ended after s"] is not None, "the lock-holding session was never ended"
    assert out["hold: ended after s"] < LOCK_HOLD_S + 10
    assert "terminat" in out["hold: ended with"] or "closed the connection" in out["hold: ended with"]
    ended = _query(timeline, "SELECT ended_at IS NOT NULL FROM fleet.agent_row_locks")
    assert ended in ([], [(True,)])  # forgotten once released, or still marked ended
    alerts = [p for p in timeline.webhook if p.get("kind") == "agent_row_locked"]
    assert alerts and alerts[0]["agent"] == "mallory"
    assert [(alerts[0]["details"]["holder_login"],)] == _query(
        timeline, "SELECT db_login FROM fleet.agents WHERE name = 'mallory'")  # its own login
    # once ended, the row was judged: mallory went quiet after its transaction died
    assert _query(timeline, "SELECT status FROM fleet.agents WHERE name = 'mallory'") == [("down",)]


def test_a_heartbeat_flood_is_refused_per_item_counted_and_alerted(timeline):
    stored, refused, retry = timeline.outcomes["flood"]
    assert refused > stored > 0
    assert retry is not None and retry > 0
    counted = _query(timeline, """SELECT b.refused_total FROM fleet.rate_buckets b JOIN fleet.agents a USING (agent_id)
                                  WHERE a.name = 'mallory' AND b.kind = 'heartbeats'""")
    assert counted == [(refused,)]
    assert any(p.get("kind") == "agent_throttled" and p.get("agent") == "mallory" for p in timeline.webhook)
    assert _query(timeline, """SELECT count(*) FROM fleet.rate_buckets b JOIN fleet.agents a USING (agent_id)
                               WHERE a.name LIKE 'honest-%' AND b.refused_total > 0""") == [(0,)]


@pytest.mark.parametrize(("attack", "expected"), [
    ("batch over 5000", "at most 5000 items"),
    ("message over 8192 bytes", "message larger than 8192 bytes"),
    ("kv value over 1 MiB", "larger than 1 MiB"),
    ("conversation over 1 MiB", "prompt larger than 1 MiB"),
    ("101 metric keys", "at most 100 metrics"),
    ("lease of 2 hours", "at most 1 hour"),
    ("help context over 16 KiB", "larger than 16 KiB"),
    ("help question over 8192 bytes", "1 to 8192 bytes"),
    ("migration lock", "permission denied for function pg_advisory_lock"),
    ("archive lock", "permission denied for function pg_try_advisory_lock"),
    ("read another agent's key", "may not read key"),
    ("write another agent's key", "may not write key"),
    ("read a key without a token", "an agent name and token are required"),
    ("end a session", "permission denied for function end_agent_session"),
    ("signal a backend", "must be a superuser to terminate superuser process"),
    ("lift temp_file_limit", "permission denied to set parameter"),
    ("turn activity tracking on", "permission denied to set parameter"),
    ("read token hashes", "permission denied for table agents"),
])
def test_each_attack_gets_a_clear_refusal(timeline, attack, expected):
    assert expected in timeline.outcomes[attack]


def test_a_connection_flood_uses_up_only_the_attackers_own_login(timeline):
    """Every agent has its own login with its own CONNECTION LIMIT: the flood stops at that limit,
    and the honest agents' heartbeats during it were all stored (test_every_honest_heartbeat_is_stored)."""
    opened, error = timeline.outcomes["flood: connections"]
    assert opened == registry.connection_limit()
    assert "too many connections for role" in error


def test_an_agents_own_login_acts_for_that_agent_only(timeline):
    """A token stolen from another agent is refused on the thief's own login."""
    assert timeline.outcomes["stolen token, own login"].startswith("token refused for agent 'honest-01'")
    assert "token refused for agent 'honest-01'" in timeline.outcomes["stolen token, kv"]


def test_names_cannot_be_probed(timeline):
    unknown = timeline.outcomes["unknown agent"].replace("'no-such-agent'", "NAME")
    wrong = timeline.outcomes["wrong token"].replace("'honest-00'", "NAME")
    assert unknown == wrong and "token refused for agent NAME" in unknown


def test_nothing_of_another_agent_is_read_or_changed(timeline):
    assert timeline.outcomes["claim others' messages"] == []
    assert timeline.outcomes["read another's help request"] == []
    rows = _query(timeline, """SELECT count(*) FROM fleet.heartbeats h JOIN fleet.agents a USING (agent_id)
                               WHERE a.name <> 'mallory' AND h.message IN ('pwned', 'flood')""")
    assert rows == [(0,)]
    assert _query(timeline, "SELECT value FROM fleet.kv_store WHERE key = 'honest-00/state'") == [({"ok": True},)]
    assert _query(timeline, """SELECT count(*) FROM fleet.agents
                               WHERE name LIKE 'honest-%' AND last_message IN ('pwned', 'flood')""") == [(0,)]


def test_no_token_or_proof_reaches_the_server_log(timeline, pg_cluster):
    """With every statement of every login logged, neither a token nor its proof (the SHA-256 the
    client presents) is in the server log: the proof travels in the startup packet, and
    registration sends only the hash of the proof."""
    assert "cli-agent: ok heartbeat stored" in timeline.outcomes["cli"][0], timeline.outcomes["cli"]
    log = pg_cluster.logfile.read_text(errors="replace")
    assert "fleet.record_heartbeats" in log and "fleet.kv_set" in log   # agent statements were logged
    assert "INSERT INTO fleet.agents" in log                            # so were the operator's
    for name, token in timeline.tokens.items():
        assert token not in log, name
        if name not in ("mallory", "honest-01"):  # mallory's raw attacks pass its own and a stolen proof
            assert token_proof(token).hex() not in log, name
