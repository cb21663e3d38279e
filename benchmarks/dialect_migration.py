"""Benchmark: a legacy file in another dialect, migrated through its drafted mapping, against a
plain two-process COPY of the same rows into the same schema (issue #22: at most 1.5x its time).

The file: 500 agents keyed by an integer id (name, role), heartbeats with cpu and memory columns
and a time column holding epoch integers in half the rows and ISO text in the other half,
metrics with ``value`` and ``recorded_at`` mixed the same way (default 1.5 M + 1 M rows).

Timed in the same run, each into a fresh database with this project's schema:

- ``migrate-sqlite FILE --mapping mapping.yaml`` (the mapping drafted by ``--write-mapping``
  beforehand, outside the timed window), verification included;
- the baseline: agents and daily partitions, then two processes (heartbeats, metrics) in which
  SQLite renders each row, the same conversions included (epoch or ISO time, agent id -> the
  new agent, cpu and memory as the JSON payload), straight into COPY's CSV, 20,000 rows a
  commit; no checks, rejects, digests, resume points or verification.

    nice -n 10 python benchmarks/dialect_migration.py [--scale 0.2] [--rounds 3]

Each round times both into fresh databases, in alternating order, each after ``common.settle``;
the medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import migration_cluster, settle  # noqa: E402
from measured_run import measured  # noqa: E402
from migration_floor import copy_rendered  # noqa: E402

from agents_pipeline.core import migrations  # noqa: E402
from agents_pipeline.core.dsn import connect_kwargs  # noqa: E402
from agents_pipeline.core.localdb import LocalCluster  # noqa: E402
from agents_pipeline.defs.migration.session import connect  # noqa: E402

START = 1735689600   # 2025-01-01T00:00:00Z; rows one second apart from here
TIME = "CASE WHEN typeof({c}) = 'integer' THEN strftime('%Y-%m-%dT%H:%M:%S', {c}, 'unixepoch') ELSE {c} END"


def generate(path: Path, heartbeats: int, metrics: int, agents: int = 500) -> None:
    conn = sqlite3.connect(path)
    conn.executescript(f"""
        CREATE TABLE agents (id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT, created_at);
        CREATE TABLE heartbeats (id INTEGER PRIMARY KEY, agent_id INTEGER, beat_at, cpu REAL, memory INTEGER);
        CREATE TABLE metrics (id INTEGER PRIMARY KEY, agent_id INTEGER, name TEXT, value REAL, recorded_at);
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {agents})
        INSERT INTO agents SELECT i, 'agent-' || i, CASE i % 3 WHEN 0 THEN 'coordinator' ELSE 'worker' END, {START} FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {heartbeats})
        INSERT INTO heartbeats SELECT i, 1 + i % {agents},
            CASE i % 2 WHEN 0 THEN {START} + i ELSE strftime('%Y-%m-%dT%H:%M:%S', {START} + i, 'unixepoch') END,
            (i % 1000) / 10.0, 100000 + i % 5000 FROM n;
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {metrics})
        INSERT INTO metrics SELECT i, 1 + i % {agents}, CASE i % 4 WHEN 0 THEN 'latency_ms' ELSE 'queue_depth' END,
            (i % 997) / 7.0,
            CASE i % 2 WHEN 0 THEN {START} + i ELSE strftime('%Y-%m-%d %H:%M:%S', {START} + i, 'unixepoch') END FROM n;
    """)  # noqa: S608 - numbers of this module
    conn.commit()
    conn.close()


QUERIES = {
    "heartbeats": (
        f"""SELECT printf('%d,"%s+00",ok,\\N,"%w",1,%d\n', a.id, {TIME.format(c='s.beat_at')},
                          json_object('cpu', s.cpu, 'memory', s.memory), s.id)
            FROM heartbeats s JOIN temp.base_agents a ON a.legacy = s.agent_id ORDER BY s.id""",  # noqa: S608
        "heartbeats (agent_id, received_at, kind, message, payload, legacy_source, legacy_id)"),
    "metrics": (
        f"""SELECT printf('"%s+00",legacy,%d,"%w",%s,imported,\\N,\\N,1,%d\n', {TIME.format(c='s.recorded_at')},
                          a.id, s.name, s.value, s.id)
            FROM metrics s JOIN temp.base_agents a ON a.legacy = s.agent_id ORDER BY s.id""",  # noqa: S608
        "perf_samples (sampled_at, host, agent_id, metric, value, source, unit, tags, legacy_source, legacy_id)"),
}


def baseline_worker(path: str, url: str, table: str) -> None:
    conn = connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT substr(name, 7)::int, agent_id FROM fleet.agents")
        agents = cur.fetchall()
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    source.execute("CREATE TEMP TABLE base_agents (legacy INTEGER PRIMARY KEY, id INTEGER NOT NULL)")
    source.executemany("INSERT INTO temp.base_agents VALUES (?, ?)", agents)
    source.text_factory = bytes
    query, target = QUERIES[table]
    copy_rendered(conn, source.execute(query), target, 20_000)
    conn.close()


def baseline(path: Path, url: str) -> float:
    started = time.monotonic()
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    names = [r[0] for r in source.execute("SELECT name FROM agents ORDER BY id")]
    conn = connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO fleet.agents (name) SELECT unnest(%s::text[])", (names,))
        for table, legacy, col in (("heartbeats", "heartbeats", "beat_at"), ("perf_samples", "metrics", "recorded_at")):
            first, last = source.execute(f"SELECT min(date(t)), max(date(t)) FROM (SELECT {TIME.format(c=col)} AS t "  # noqa: S608
                                         f"FROM {legacy})").fetchone()
            cur.execute("SELECT fleet.ensure_partitions(%s, %s, %s)", (table, first, last))
    conn.close()
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", table, str(path), url]) for table in QUERIES]
    if any(p.wait() for p in procs):
        raise SystemExit("a baseline worker failed")
    return time.monotonic() - started


def _database(cluster: LocalCluster, name: str) -> str:
    admin = psycopg2.connect(**connect_kwargs(cluster.url("postgres")))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    admin.close()
    url = cluster.url(name)
    conn = psycopg2.connect(**connect_kwargs(url))
    migrations.migrate(conn)
    conn.close()
    return url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of 1.5 M heartbeats + 1 M metrics")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each timing both into fresh databases")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        table, path, url = opts.worker
        baseline_worker(path, url, table)
        return 0
    work = Path(tempfile.mkdtemp(prefix="ap-bench-dialect-", dir="/tmp"))
    os.chmod(work, 0o755)
    path = work / "dialect.db"
    sizes = (int(1_500_000 * opts.scale), int(1_000_000 * opts.scale))
    generate(path, *sizes)
    cluster = migration_cluster(work)
    ours_s, base_s, failed = [], [], False
    try:
        mapping = work / "mapping.yaml"
        rows = sum(sizes) + 500
        print(f"rows {rows:,} (heartbeats {sizes[0]:,}, metrics {sizes[1]:,}, agents 500)")
        for n in range(opts.rounds):
            ours_url, base_url = _database(cluster, f"ours{n}"), _database(cluster, f"base{n}")
            env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": ours_url, "PYTHONPATH": str(ROOT)}
            cli = [sys.executable, "-m", "agents_pipeline.cli.main", "migrate-sqlite", str(path)]
            if n == 0:   # drafted outside the timed window
                subprocess.run([*cli, "--dry-run", "--write-mapping", str(mapping)], env=env, check=True,
                               capture_output=True)
            load = open("/proc/loadavg").read().split()[0]
            for which in (("ours", "base") if n % 2 == 0 else ("base", "ours")):   # the order alternates
                settle(cluster.url("postgres"))
                if which == "base":
                    base_s.append(baseline(path, base_url))
                    continue
                mine = measured([*cli, "--mapping", str(mapping), "--json"], env=env)
                report = json.loads(mine["stdout"]) if mine["stdout"].strip().startswith("{") else {}
                failed |= mine["returncode"] != 0 or report.get("ok") is not True
                ours_s.append(mine["seconds"])
                print(f"  round {n + 1}: migrate-sqlite --mapping {mine['seconds']:.1f} s, peak {mine['peak_mb']:.0f} MiB, "
                      f"exit {mine['returncode']}, verified {report.get('ok')}, "
                      f"rejected {report.get('totals', {}).get('rejected')}")
            print(f"  round {n + 1}: plain two-process COPY {base_s[-1]:.1f} s; ratio {ours_s[-1] / base_s[-1]:.2f}x "
                  f"(load {load} at the start)", flush=True)
        ours, base = statistics.median(ours_s), statistics.median(base_s)
        print(f"medians of {opts.rounds}: migrate-sqlite --mapping {ours:.1f} s, plain two-process COPY {base:.1f} s; "
              f"ratio {ours / base:.2f}x the baseline's time (goal <= 1.5x); per round "
              f"{', '.join(f'{o / b:.2f}x' for o, b in zip(ours_s, base_s, strict=True))}")
        return 1 if failed else 0
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
