"""Mass health transitions against their floor, in one run (benchmarks/health_eval.py).

A mass case (every agent new -> up, the whole fleet down at once, the whole fleet back) writes
as many rows as there are agents, so its time is bound by the machine's write speed, which on
a shared 2-core machine moves by 2-5x between runs. The floor is what the same transitions cost
with no rules: one plain ``UPDATE fleet.agents`` plus one ``INSERT INTO fleet.status_changes``,
committed. Each case and its floor run alternately from the same saved state (restored between
runs, then vacuumed, so both find the same pages), and the goal is a ratio: the evaluation
within 3x its floor.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from datetime import datetime

EVALUATE = """SELECT count(*) FROM fleet.evaluate_health(now() + make_interval(secs => %s),
                  ARRAY['log', 'webhook'], interval '1 hour', 5)"""
# The same at a fixed time: the repeats of a case take long enough for agents to turn late.
EVALUATE_AT = """SELECT count(*) FROM fleet.evaluate_health(%s + make_interval(secs => %s),
                     ARRAY['log', 'webhook'], interval '1 hour', 5)"""


@dataclass(frozen=True)
class Floor:
    """The transitions of a case written by plain SQL: which agents, to what, since when."""

    where: str        # over fleet.agents a (a psycopg2 template: % doubled)
    to_status: str
    since: str        # an expression over a


# The same transitions each case's evaluation records, with none of the rules.
NEW_TO_UP = Floor("a.status = 'new'", "up", "a.last_seen")
ONE_PERCENT_LATE = Floor("a.agent_id %% 100 = 0 AND a.status = 'up'", "late", "a.last_seen + a.period")
ONE_PERCENT_DOWN = Floor("a.agent_id %% 100 = 0 AND a.status = 'late'", "down", "a.last_seen + a.period + a.grace")
COLLAPSE = Floor("NOT a.placeholder AND a.status <> 'down'", "down", "a.last_seen + a.period + a.grace")
RECOVERY = Floor("a.status = 'down'", "up", "a.last_seen")


def floor_sql(floor: Floor) -> str:
    """The floor's statement; its predicate and expression are this module's constants, the
    status a bound parameter."""
    return f"""
        WITH old AS (SELECT a.agent_id, a.status FROM fleet.agents a WHERE {floor.where}),
        written AS (
            UPDATE fleet.agents a SET status = %(to)s, status_since = {floor.since}, status_message = NULL
            FROM old WHERE a.agent_id = old.agent_id
            RETURNING a.agent_id, old.status AS from_status, a.status_since)
        INSERT INTO fleet.status_changes (agent_id, from_status, to_status, changed_at, noticed_at, reason)
        SELECT w.agent_id, w.from_status, %(to)s, w.status_since, now(), 'floor' FROM written w"""  # noqa: S608


def reference_time(conn) -> datetime:
    """The server's now, committed: a fixed time for the evaluations that follow."""
    with conn.cursor() as cur:
        cur.execute("SELECT now()")
        at = cur.fetchone()[0]
    conn.commit()
    return at


def _timed(conn, sql: str, params: dict) -> float:
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute(sql, params)
    conn.commit()
    return (time.perf_counter() - started) * 1000


class SavedState:
    """The agents' statuses and the alert tables as they stand, to go back to after a run."""

    def __init__(self, conn) -> None:
        self.conn = conn
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS bench_agents, bench_alerts")
            cur.execute("""CREATE TEMP TABLE bench_agents AS
                           SELECT agent_id, status, status_since, status_message FROM fleet.agents""")
            cur.execute("""CREATE TEMP TABLE bench_alerts AS
                           SELECT alert_id, resolved_at, last_notified_at FROM fleet.alerts""")
            cur.execute("""SELECT (SELECT coalesce(max(change_id), 0) FROM fleet.status_changes),
                                  (SELECT coalesce(max(alert_id), 0) FROM fleet.alerts),
                                  (SELECT coalesce(max(notification_id), 0) FROM fleet.notifications)""")
            self.marks = cur.fetchone()
        conn.commit()

    def restore(self) -> None:
        changes, alerts, notices = self.marks
        with self.conn.cursor() as cur:
            cur.execute("""UPDATE fleet.agents a SET status = s.status, status_since = s.status_since,
                                  status_message = s.status_message
                           FROM bench_agents s WHERE a.agent_id = s.agent_id
                             AND (a.status, a.status_since) IS DISTINCT FROM (s.status, s.status_since)""")
            cur.execute("DELETE FROM fleet.notifications WHERE notification_id > %s", (notices,))
            cur.execute("DELETE FROM fleet.alerts WHERE alert_id > %s", (alerts,))
            cur.execute("""UPDATE fleet.alerts al SET resolved_at = s.resolved_at, last_notified_at = s.last_notified_at
                           FROM bench_alerts s WHERE al.alert_id = s.alert_id
                             AND (al.resolved_at, al.last_notified_at)
                                 IS DISTINCT FROM (s.resolved_at, s.last_notified_at)""")
            cur.execute("DELETE FROM fleet.status_changes WHERE change_id > %s", (changes,))
        self.conn.commit()
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            cur.execute("VACUUM fleet.agents, fleet.alerts, fleet.status_changes, fleet.notifications")
        self.conn.autocommit = False


@dataclass
class CaseResult:
    name: str
    transitions: int
    evaluation_ms: list[float]
    floor_ms: list[float]
    at: datetime          # the evaluations' reference time (now + offset is what they judged at)

    @property
    def ratio(self) -> float:
        return statistics.median(self.evaluation_ms) / statistics.median(self.floor_ms)

    def line(self) -> str:
        e, f = statistics.median(self.evaluation_ms), statistics.median(self.floor_ms)
        runs = ", ".join(f"{x:.0f}" for x in self.evaluation_ms)
        floors = ", ".join(f"{x:.0f}" for x in self.floor_ms)
        return (f"{self.name}: {self.transitions:,} transitions, evaluation median {e:.1f} ms ({runs}); "
                f"floor median {f:.1f} ms ({floors}); ratio {e / f:.2f}")


def against_floor(conn, name: str, offset_s: float, floor: Floor, repeats: int) -> CaseResult:
    """Times the evaluation at now + offset_s and its floor alternately from one saved state,
    ``repeats`` times each; leaves the database in the state after the evaluation."""
    saved = SavedState(conn)
    at = reference_time(conn)
    evaluations, floors, transitions = [], [], 0
    for i in range(repeats):
        order = ("floor", "evaluation") if i % 2 == 0 else ("evaluation", "floor")
        for what in order:
            if what == "floor":
                floors.append(_timed(conn, floor_sql(floor), {"to": floor.to_status}))
            else:
                started = time.perf_counter()
                with conn.cursor() as cur:
                    cur.execute(EVALUATE_AT, (at, offset_s))
                    transitions = cur.fetchone()[0]
                conn.commit()
                evaluations.append((time.perf_counter() - started) * 1000)
            saved.restore()
    with conn.cursor() as cur:  # the state the case leads to, for the next case
        cur.execute(EVALUATE_AT, (at, offset_s))
    conn.commit()
    return CaseResult(name, transitions, evaluations, floors, at)
