"""Baseline for the migration benchmark: the bytes alone, no guarantees.

Moves the rows of a *clean* legacy file into the same fleet tables as ``migrate-sqlite`` does
(same partitions and indexes, the loader's session settings from ``session.connect``, one COPY
per 20,000 rows, a commit each), with SQLite rendering each row straight into COPY's CSV and
nothing else: no per-row checks, no rejects, no digests, no resume points. Three worker
processes, one per big table, as the real loader uses. With ``--verify`` it then runs the real
verification's scan (``verify.committed``: count and digest sum over every committed row, the
three tables at once), so the run splits into what moving the data costs and what checking it
costs. A dirty file fails here: that is the point of the real loader.

With ``--deferred-indexes`` the three tables' secondary indexes are dropped before the load and
built again afterwards (inside the timed window), as pgloader builds its indexes after its COPY.

    python benchmarks/migration_floor.py FILE DATABASE_URL [--verify] [--deferred-indexes]
"""

from __future__ import annotations

import argparse
import io
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from psycopg2 import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents_pipeline.defs.migration.session import connect  # noqa: E402
from agents_pipeline.defs.migration.tables import KNOWN  # noqa: E402
from agents_pipeline.defs.migration.verify import committed  # noqa: E402

QUERIES = {
    "agent_heartbeats": (
        """SELECT printf('%d,"%s+00",ok,"%w",%s,1,%d\n', a.id, s.timestamp, s.status,
                          iif(s.metadata IS NULL, '\\N', printf('"%w"', s.metadata)), s.rowid)
            FROM agent_heartbeats s JOIN temp.floor_agents a ON a.name = s.agent_id ORDER BY s.rowid""",
        "heartbeats (agent_id, received_at, kind, message, payload, legacy_source, legacy_id)", 20000),
    "performance_metrics": (
        """SELECT printf('"%s+00",legacy,%s,"%w",%s,imported,%s,%s,1,%d\n', s.timestamp, coalesce(a.id, '\\N'),
                          s.metric_name, coalesce(s.metric_value, '\\N'),
                          iif(s.unit IS NULL, '\\N', printf('"%w"', s.unit)),
                          iif(s.tags IS NULL, '\\N', printf('"%w"', s.tags)), s.rowid)
            FROM performance_metrics s LEFT JOIN temp.floor_agents a ON a.name = s.agent_id ORDER BY s.rowid""",
        "perf_samples (sampled_at, host, agent_id, metric, value, source, unit, tags, legacy_source, legacy_id)",
        20000),
    "llm_conversations": (
        """SELECT printf('"%w",%s,%s,"%w","%w","%w",%d,%d,%d,%s,%s,"%s+00",%s,1,%d\n', s.conversation_id,
                          coalesce(a.id, '\\N'),
                          coalesce(s.run_id, printf('00000000-0000-4000-8000-%012x', s.rowid)), s.model,
                          s.prompt, s.response, s.prompt_tokens, s.completion_tokens, s.total_tokens,
                          coalesce(s.cost, '\\N'), coalesce(s.latency_ms, '\\N'), s.created_at,
                          printf('"%w"', coalesce(s.metadata, '{}')), s.rowid)
            FROM llm_conversations s LEFT JOIN temp.floor_agents a ON a.name = s.agent_id ORDER BY s.rowid""",
        "llm_conversations (conversation_id, agent_id, run_id, model, prompt, response, prompt_tokens, "
        "completion_tokens, total_tokens, cost, latency_ms, created_at, metadata, legacy_source, legacy_id)", 2000),
}


def worker(path: str, url: str, table: str) -> None:
    conn = connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT name, agent_id FROM fleet.agents")
        agents = cur.fetchall()
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    source.execute("CREATE TEMP TABLE floor_agents (name TEXT PRIMARY KEY, id INTEGER NOT NULL)")
    source.executemany("INSERT INTO temp.floor_agents VALUES (?, ?)", agents)
    source.text_factory = bytes
    query, target, size = QUERIES[table]
    copy_rendered(conn, source.execute(query), target, size)
    conn.close()


def copy_rendered(conn, rows: sqlite3.Cursor, target: str, size: int) -> None:
    """COPYs rows SQLite rendered as CSV lines into ``fleet.<target>``, a commit per ``size`` rows."""
    copy = f"COPY fleet.{target} FROM STDIN WITH (FORMAT csv, NULL '\\N')"
    with conn.cursor() as cur:
        while batch := rows.fetchmany(size):
            cur.copy_expert(copy, io.BytesIO(b"".join(r[0] for r in batch)), size=256 * 1024)
            conn.commit()


def prepare(path: str, url: str) -> None:
    """Agents and daily partitions, as the real loader makes them before the big tables."""
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    names = [r[0] for r in source.execute("SELECT agent_id FROM agents")]
    spans = {t: source.execute(f"SELECT min(substr(timestamp, 1, 10)), max(substr(timestamp, 1, 10)) FROM {t}")  # noqa: S608
             .fetchone() for t in ("agent_heartbeats", "performance_metrics")}
    conn = connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("INSERT INTO fleet.agents (name) SELECT unnest(%s::text[])", (names,))
        cur.execute("SELECT fleet.ensure_partitions('heartbeats', %s, %s)", spans["agent_heartbeats"])
        cur.execute("SELECT fleet.ensure_partitions('perf_samples', %s, %s)", spans["performance_metrics"])
    conn.close()


def drop_indexes(url: str) -> list[str]:
    """Drops the big tables' indexes that back no constraint; returns their definitions."""
    conn = connect(url)
    with conn, conn.cursor() as cur:
        cur.execute("""SELECT i.indexname, i.indexdef FROM pg_indexes i
                       WHERE i.schemaname = 'fleet' AND i.tablename IN ('heartbeats', 'perf_samples', 'llm_conversations')
                         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)""")
        found = cur.fetchall()
        for name, _ in found:
            cur.execute(sql.SQL("DROP INDEX fleet.{}").format(sql.Identifier(name)))
    conn.close()
    return [definition.replace(" ON ONLY ", " ON ") for _, definition in found]


def build_indexes(url: str, definitions: list[str]) -> None:
    """Builds the dropped indexes again, two at a time (one per core)."""
    def build(definition: str) -> None:
        conn = connect(url)
        with conn, conn.cursor() as cur:
            cur.execute(definition)
        conn.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(build, definitions))


def verify(url: str) -> None:
    """The real verification's PostgreSQL side (``verify.committed``: count and digest sum over
    every committed row), the three tables at once, as the loader's workers run it."""
    def check(table: str) -> None:
        conn = connect(url)
        with conn, conn.cursor() as cur:
            rows, _ = committed(cur, KNOWN[table], 1)
        conn.close()
        if rows == 0:
            raise SystemExit(f"{table}: the verification scan found no rows")

    with ThreadPoolExecutor(max_workers=len(QUERIES)) as pool:
        list(pool.map(check, QUERIES))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("url")
    parser.add_argument("--verify", action="store_true", help="then run the real verification's SQL")
    parser.add_argument("--deferred-indexes", action="store_true",
                        help="drop the secondary indexes before the load, build them after it")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    opts = parser.parse_args()
    if opts.worker:
        worker(opts.file, opts.url, opts.worker)
        return 0
    started = time.monotonic()
    prepare(opts.file, opts.url)
    deferred = drop_indexes(opts.url) if opts.deferred_indexes else []
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", table, opts.file, opts.url]) for table in QUERIES]
    if any(p.wait() for p in procs):
        print("a floor worker failed (a dirty file? this baseline only takes clean rows)", file=sys.stderr)
        return 1
    build_indexes(opts.url, deferred)
    loaded = time.monotonic() - started
    if opts.verify:
        verify(opts.url)
    print(f"loaded {loaded:.2f} s, total {time.monotonic() - started:.2f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
