"""What tasks cost the paths that ran before them: a heartbeat (which now renews its agent's
leases) and a steady health evaluation (which now releases down agents' tasks), each timed against
its own previous version in the same run, on the same server and data, alternating.

    .venv/bin/python benchmarks/task_costs.py [--calls 3000] [--rounds 6] [--agents 10000]

The previous versions are the function files as they were before the tasks change (read with
`git show`, created beside the current ones as fleet.record_heartbeats_before and
fleet.evaluate_health_before). The cluster uses PostgreSQL's durable defaults.

The measure is the server backend's CPU time per call (utime + stime from /proc, so the server
must run on this host), not wall time: on a shared machine wall time moved by 15% between
identical runs, CPU time by a few percent. Medians over the rounds; the order alternates.

- heartbeats: one session, autocommit, one heartbeat per call over 50 agents; with no task
  claimed, then with every agent holding 4 claimed tasks whose leases are fresh (the common case:
  a renewal writes only once half a lease has passed) beside 200,000 done tasks.
- evaluation: the steady tick (nothing changes) at --agents agents, 1% of them down and silenced;
  with no task claimed, then with 2,000 tasks claimed by agents that are up.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg2

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, scratch_home

ROOT = Path(__file__).resolve().parents[1]
AGENTS = 50
HEARTBEAT = """SELECT * FROM fleet.{fn}(ARRAY[%s]::text[], ARRAY[NULL]::bytea[], ARRAY['ok']::text[],
                  ARRAY[now()]::timestamptz[], ARRAY[NULL]::text[], ARRAY[NULL]::jsonb[])"""
EVALUATE = "SELECT count(*) FROM fleet.{fn}(now(), ARRAY['log'], interval '1 hour', 5)"


def previous_version(path: str, marker: str) -> tuple[str, str]:
    """(commit, text) of ``path`` just before the first commit that added ``marker`` to it."""
    found = subprocess.run(["git", "log", "--reverse", "--format=%H", f"-S{marker}", "--", path], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    commit = found[0] if found else ""
    if not commit:
        raise SystemExit(f"no commit added {marker!r} to {path}")
    text = subprocess.run(["git", "show", f"{commit}^:{path}"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    return commit[:10], text


def install_before(conn) -> list[str]:
    notes = []
    for path, marker, name in (("sql/functions/record_heartbeats.sql", "sql/0014", "record_heartbeats"),
                               ("sql/functions/evaluate_health.sql", "Issue #18", "evaluate_health")):
        commit, text = previous_version(path, marker)
        with conn.cursor() as cur:
            cur.execute(migrations._with_prefix(text.replace(f"fleet.{name}(", f"fleet.{name}_before(")))
        notes.append(f"{name}_before = {path} at {commit}^")
    conn.commit()
    return notes


def load(conn, agents: int) -> None:
    with conn.cursor() as cur:
        cur.execute("""INSERT INTO fleet.agents (name, period, grace, created_at, status_since, status, last_seen,
                           last_kind, heartbeat_count)
                       SELECT CASE WHEN g <= %s THEN 'agent-' || (g - 1) ELSE 'bench-' || g END,
                              interval '1 hour', interval '30 minutes', now() - interval '2 days', now() - interval '1 day',
                              'up', now(), 'ok', 1
                       FROM generate_series(1, %s) g""", (AGENTS, agents))
        # 1% down (and silenced, so no reminders): the release step has down agents to look at.
        cur.execute("""UPDATE fleet.agents SET status = 'down', last_seen = now() - interval '1 day',
                           silenced_until = now() + interval '1 day' WHERE agent_id % 100 = 0 AND name LIKE 'bench-%'""")
        cur.execute("""UPDATE fleet.system_config SET value = '{"rate_per_s": 1e9, "burst": 1e9}'
                       WHERE key = 'rate_limit:heartbeats'""")
        cur.execute("""INSERT INTO fleet.tasks (kind, submitted_by, state, finished_at, claimed_by)
                       SELECT 'bulk', 1, 'done', now() - interval '1 day', 1 FROM generate_series(1, 200000)""")
    conn.commit()


def claim(conn, per_agent: int, agents_like: str, total: int | None = None) -> None:
    with conn.cursor() as cur:
        cur.execute("""INSERT INTO fleet.tasks (kind, submitted_by, state, claimed_by, attempt_id, attempts, claimed_at,
                           lease, lease_until, renew_at)
                       SELECT 'held', a.agent_id, 'claimed', a.agent_id, gen_random_uuid(), 1, now(),
                              interval '10 minutes', now() + interval '10 minutes', now() + interval '5 minutes'
                       FROM (SELECT agent_id FROM fleet.agents WHERE name LIKE %s AND status = 'up'
                             ORDER BY agent_id LIMIT %s) a CROSS JOIN generate_series(1, %s)""",
                    (agents_like, total or 10**9, per_agent))
        cur.execute("ANALYZE fleet.tasks")
    conn.commit()


def unclaim(conn) -> None:
    with conn.cursor() as cur:
        cur.execute("DELETE FROM fleet.tasks WHERE state = 'claimed'")
        cur.execute("ANALYZE fleet.tasks")
    conn.commit()


def backend_cpu_us(cur) -> Callable[[], float]:
    """A clock of the session's server backend: its CPU time in microseconds."""
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    tick = os.sysconf("SC_CLK_TCK")

    def now() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick * 1e6
    return now


def compare(cur, call: Callable[[str, int], None], names: tuple[str, str], calls: int, rounds: int) -> str:
    """Median CPU per call of the previous and the current function, alternating."""
    clock = backend_cpu_us(cur)
    for fn in names:
        call(fn, max(calls // 10, 5))                     # plans cached, caches warm
    runs: dict[str, list[float]] = {fn: [] for fn in names}
    for r in range(rounds):
        for fn in names if r % 2 == 0 else names[::-1]:
            started = clock()
            call(fn, calls)
            runs[fn].append((clock() - started) / calls)
    before, now = (statistics.median(runs[fn]) for fn in names)
    detail = ", ".join(f"{b:.0f}/{n:.0f}" for b, n in zip(*runs.values(), strict=True))
    return f"before {before:,.1f} us, now {now:,.1f} us, now/before {now / before:.3f} (rounds: {detail})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000, help="heartbeats per round (evaluations: a tenth)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--agents", type=int, default=10_000)
    args = parser.parse_args()

    cluster = LocalCluster(scratch_home("ap-bench-"))
    cluster.up()
    try:
        conn = psycopg2.connect(**connect_kwargs(cluster.url()))
        migrations.migrate(conn)
        conn.autocommit = False
        notes = install_before(conn)
        load(conn, args.agents)
        print(f"cores={os.cpu_count()} python={sys.version.split()[0]} agents={args.agents}; " + "; ".join(notes))
        names = [f"agent-{i}" for i in range(AGENTS)]

        def heartbeats(fn: str, n: int) -> None:
            with conn.cursor() as cur:
                for i in range(n):
                    cur.execute(HEARTBEAT.format(fn=fn), (names[i % AGENTS],))
                    cur.fetchall()
                    conn.commit()

        def evaluations(fn: str, n: int) -> None:
            with conn.cursor() as cur:
                for _ in range(n):
                    cur.execute(EVALUATE.format(fn=fn))
                    cur.fetchall()
                    conn.commit()

        with conn.cursor() as cur:
            for label, setup in (("no task claimed", unclaim),
                                 ("4 fresh leases per agent", lambda c: claim(c, 4, "agent-%"))):
                setup(conn)
                result = compare(cur, heartbeats, ("record_heartbeats_before", "record_heartbeats"),
                                 args.calls, args.rounds)
                print(f"heartbeat CPU, {label}: {result}", flush=True)
            for label, setup in (("no task claimed", unclaim),
                                 ("2,000 tasks claimed by up agents",
                                  lambda c: (unclaim(c), claim(c, 1, "bench-%", 2000)))):
                setup(conn)
                result = compare(cur, evaluations, ("evaluate_health_before", "evaluate_health"),
                                 max(args.calls // 10, 10), args.rounds)
                print(f"steady evaluation CPU, {label}: {result}", flush=True)
        conn.close()
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
