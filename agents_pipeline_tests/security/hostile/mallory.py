"""The attacker of the hostile-agent suite: the agent login, its own valid token, raw SQL where
SharedState would check. Each attack stores what it got back in ``Timeline.outcomes`` for the
tests to judge; the attacks run in one thread during the attack phase (``Mallory.run``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg2

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.registry import token_proof
from agents_pipeline_tests.security.hostile.timeline import Timeline


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
