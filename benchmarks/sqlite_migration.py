"""Benchmark: `agents-pipeline migrate-sqlite` against pgloader on the same dirty legacy file.

Generates a legacy file (default 2 M heartbeats, 1 M metrics, 100 k conversations with
multi-KB texts, plus agents and alerts; about 0.1-1 % of rows carry each kind of dirt the
legacy README lists), starts a throwaway PostgreSQL, then times, in the same run:

- this project: the CLI as a subprocess, verification (recounts and SQL checksums) included;
- pgloader (Debian's package, ``prefetch rows = 10000`` unless ``--pgloader-prefetch``) into a fresh database;
- on the clean file, a baseline (``migration_floor.py``): the same rows rendered by SQLite straight
  into COPY, into the same tables, without checks, digests or resume points, then the real
  verification's SQL; what moving the bytes costs, and what checking them adds. Twice: with the
  tables' indexes kept during the load, and with them built after it (as pgloader does).

Reports rows per second, peak memory (RSS of the process tree, polled) and the ratio, and
what each tool did with each kind of dirty row (found by its rowid in both databases).

    nice -n 10 python benchmarks/sqlite_migration.py [--scale 0.1] [--out docs/benchmarks/migration.md]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agents_pipeline.core import migrations  # noqa: E402
from agents_pipeline.core.dsn import connect_kwargs  # noqa: E402
from agents_pipeline.core.localdb import LocalCluster  # noqa: E402

SCHEMA = (ROOT / "docs" / "legacy" / "schema.sql").read_text()
AGENTS = 50
BASE = 1_735_689_600  # 2025-01-01T00:00:00Z
WORDS = ("agent", "model", "token", "latency", "prompt", "context", "answer", "retry", "cache", "vector", "tool",
         "heartbeat", "fleet", "queue", "error", "summary", "report", "memory", "plan", "step")

# Dirt per table: rowid % modulus -> kind. The same rowids are checked in both databases.
HB_DIRT = {1: "epoch integer", 2: "epoch real", 3: "Z suffix", 4: "+02:00 offset", 5: "invalid UTF-8 text",
           6: "NUL in text", 7: "invalid JSON", 8: "epoch 0", 9: "year 2106", 10: "agent not in agents",
           11: "Python repr JSON"}
METRIC_DIRT = {1: "'N/A' in REAL", 2: "'12.5%' in REAL", 3: "'abc' in REAL", 4: "epoch seconds in REAL (8 bytes)"}
CONV_DIRT = {1: "'many' in INTEGER", 2: "NUL in text", 3: "invalid UTF-8 text"}
HB_MOD, METRIC_MOD, CONV_MOD = 1000, 1000, 100
# dirty: every kind of dirt; clean: none; history: clean without the conversations, the one
# file pgloader completes (its heap runs out on 100 k multi-KB conversations).
VARIANTS = ("dirty", "clean", "history")
# pgloader stops reading a table at the first row of these kinds and loses the rest of it, so
# they sit in the last 1 % of each table: its timing then covers 99 % of the rows, not 0.5 %.
STOPS_PGLOADER = {"invalid UTF-8 text"}


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def generate(path: Path, heartbeats: int, metrics: int, conversations: int, dirty: bool = True) -> dict[str, int]:
    rng = random.Random(7)
    conn = sqlite3.connect(path)
    conn.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
    conn.executemany("INSERT INTO agents VALUES (?, ?, ?, 'active', ?, ?, ?, 1)",
                     [(f"agent-{i}", f"Agent {i}", "worker", json.dumps({"n": i}), _iso(BASE), _iso(BASE + 86400 * 30))
                      for i in range(AGENTS)])

    def hb_rows():
        for rid in range(1, heartbeats + 1):
            t = BASE + rid * 1.3
            kind = HB_DIRT.get(rid % HB_MOD) if dirty and rid % HB_MOD else None
            if kind in STOPS_PGLOADER and rid < heartbeats * 0.99:
                kind = None  # dirt that stops pgloader's reader only in the last 1 % (see below)
            agent, ts, status, meta = f"agent-{rid % AGENTS}", _iso(t) + f".{rid % 1000:03d}", "healthy", None
            if rid % 7 == 0:
                meta = f'{{"load": {rng.random():.2f}, "queue": {rid % 50}}}'
            if kind == "epoch integer":
                ts = int(t)
            elif kind == "epoch real":
                ts = t + 0.25
            elif kind == "Z suffix":
                ts = _iso(t) + "Z"
            elif kind == "+02:00 offset":
                ts = _iso(t + 7200) + "+02:00"
            elif kind == "invalid UTF-8 text":
                status = b"ok\xff\xfe"
            elif kind == "NUL in text":
                status = "ok\x00tail"
            elif kind == "invalid JSON":
                meta = '{"load": 0.5, "que'
            elif kind == "epoch 0":
                ts = 0
            elif kind == "year 2106":
                ts = "2106-02-07 06:28:15"
            elif kind == "agent not in agents":
                agent = f"ghost-{rid % 5}"
            elif kind == "Python repr JSON":
                meta = "{'load': 0.5, 'ok': True}"
            yield rid, agent, ts, status, meta

    conn.executemany("INSERT INTO agent_heartbeats VALUES (?, ?, ?, CAST(? AS TEXT), ?)", hb_rows())

    def metric_rows():
        names = ("cpu_percent", "memory_mb", "disk_percent", "response_time_ms")
        for rid in range(1, metrics + 1):
            kind = METRIC_DIRT.get(rid % METRIC_MOD) if dirty and rid % METRIC_MOD else None
            if kind in STOPS_PGLOADER and rid < metrics * 0.99:
                kind = None
            value: object = round(rng.random() * 100, 3)
            name = names[rid % 4]
            if kind == "'N/A' in REAL":
                value = "N/A"
            elif kind == "'12.5%' in REAL":
                value = "12.5%"
            elif kind == "'abc' in REAL":
                value = "abc"
            elif kind == "epoch seconds in REAL (8 bytes)":
                name, value = "last_run_epoch", BASE + rid + 0.123456
            yield (rid, _iso(BASE + rid * 2.6), f"agent-{rid % AGENTS}" if rid % 5 else None, name, value,
                   "%" if name.endswith("percent") else None, f'{{"host": "h{rid % 3}"}}')

    conn.executemany("INSERT INTO performance_metrics VALUES (?, ?, ?, ?, ?, ?, ?)", metric_rows())
    block = " ".join(rng.choice(WORDS) for _ in range(200_000))

    def conv_rows():
        for rid in range(1, conversations + 1):
            kind = CONV_DIRT.get(rid % CONV_MOD) if dirty and rid % CONV_MOD else None
            if kind in STOPS_PGLOADER and rid < conversations * 0.99:
                kind = None
            start = (rid * 7919) % (len(block) - 8000)
            prompt: object = block[start:start + 2000 + rid % 2000]
            response: object = block[start + 100:start + 1500 + rid % 1500]
            tokens: object = 100 + rid % 900
            if kind == "'many' in INTEGER":
                tokens = "many"
            elif kind == "NUL in text":
                response = "partial\x00" + str(response)
            elif kind == "invalid UTF-8 text":
                prompt = b"\xc3\x28" + str(prompt).encode()
            yield (rid, f"conv-{rid // 3}", f"agent-{rid % AGENTS}", None, "gpt-4o", prompt, response, tokens, 200,
                   300, 0.0012, 850.5, _iso(BASE + rid * 26), '{"temperature": 0.2}')

    conn.executemany("INSERT INTO llm_conversations VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, ?, ?)",
                     conv_rows())
    conn.executemany("INSERT INTO system_alerts (alert_type, severity, agent_id, message, created_at, resolved) "
                     "VALUES ('agent_down', 'critical', ?, 'down', ?, ?)",
                     [(f"agent-{i % AGENTS}", _iso(BASE + i * 600), "true" if dirty and i % 10 == 0 else i % 2)
                      for i in range(1000)])
    conn.commit()
    counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
              for t in ("agents", "agent_heartbeats", "performance_metrics", "llm_conversations", "system_alerts")}
    conn.close()
    return counts


def measured(args: list[str], env: dict | None = None, log: Path | None = None, timeout: float = 3600,
             idle_limit: float = 60.0) -> dict:
    """Runs a command, polling the RSS of its whole process tree; returns time, peak, output.
    A command that uses no CPU for ``idle_limit`` seconds (pgloader hangs after some reader
    errors) or runs past ``timeout`` is killed and reported as hung."""
    hung = [False]
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 - closed below
    started = time.monotonic()
    proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE,
                            text=True)
    peak = [0]
    idle_since = [time.monotonic()]

    def poll() -> None:
        cpu_seen = -1.0
        try:
            root = psutil.Process(proc.pid)
            while proc.poll() is None:
                total, cpu = 0, 0.0
                for p in [root, *root.children(recursive=True)]:
                    try:
                        total += p.memory_info().rss
                        times = p.cpu_times()
                        cpu += times.user + times.system
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
                if cpu > cpu_seen + 0.05:
                    cpu_seen, idle_since[0] = cpu, time.monotonic()
                elif time.monotonic() - idle_since[0] > idle_limit:
                    proc.kill()  # no CPU used for idle_limit seconds: hung (pgloader after a reader error)
                    hung[0] = True
                    return
                time.sleep(0.1)
        except psutil.Error:
            pass

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        hung[0] = True
        proc.kill()
        stdout, stderr = proc.communicate()
    seconds = time.monotonic() - started
    if hung[0]:
        seconds = idle_since[0] - started  # up to its last sign of life
    watcher.join()
    if log:
        out.close()
        stdout = log.read_text(errors="replace")
    return {"seconds": seconds, "peak_mb": peak[0] / 2**20, "returncode": proc.returncode, "stdout": stdout or "",
            "stderr": stderr or "", "hung": hung[0]}


def _query(url: str, statement: str, params: tuple = ()) -> list[tuple]:
    conn = psycopg2.connect(**connect_kwargs(url))
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall()
    finally:
        conn.close()


def dirt_fates(ours: str, pgl: str, sizes: tuple[int, int, int]) -> list[tuple[str, str, str, str]]:
    """(table, dirt kind, what pgloader did, what this project did) for three rowids per kind."""
    fates = []
    checks = [("agent_heartbeats", "heartbeats", sizes[0], HB_DIRT, HB_MOD, "timestamp"),
              ("performance_metrics", "perf_samples", sizes[1], METRIC_DIRT, METRIC_MOD, "metric_value"),
              ("llm_conversations", "llm_conversations", sizes[2], CONV_DIRT, CONV_MOD, "prompt_tokens")]
    for legacy, target, size, dirt, modulus, show in checks:
        for residue, kind in dirt.items():
            first = residue
            if kind in STOPS_PGLOADER:  # generated only in the last 1 % of the table
                base = int(size * 0.99)
                first = base + (residue - base) % modulus
            rowids = [first + modulus * k for k in range(3)]
            have = _query(pgl, f'SELECT count(*) FROM {legacy} WHERE id = ANY(%s)', (rowids,))[0][0]  # noqa: S608
            sample = _query(pgl, f'SELECT "{show}"::text FROM {legacy} WHERE id = %s', (rowids[0],))  # noqa: S608
            pg_fate = (f"kept {have}/3" + (f", {show} = {sample[0][0]!r}" if sample else "")) if have else "row lost (0/3 kept)"
            written = _query(ours, f"SELECT count(*) FROM fleet.{target} WHERE legacy_source = 1 "  # noqa: S608
                                   "AND legacy_id = ANY(%s)", (rowids,))[0][0]
            rejected = _query(ours, "SELECT reason FROM fleet.legacy_rejects WHERE table_name = %s AND legacy_id = ANY(%s)",
                              (legacy, rowids))
            our_fate = (f"converted {written}/3" if written else "") + (
                f"rejected {len(rejected)}/3: {rejected[0][0][:70]}" if rejected else "")
            fates.append((legacy, kind, pg_fate, our_fate))
    return fates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full 2M/1M/100k size")
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep (and reuse) the generated files in")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown result here")
    parser.add_argument("--skip-pgloader", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="skip the plain-COPY baseline on the clean file")
    parser.add_argument("--only", choices=VARIANTS, default=None, help="run one of the files")
    parser.add_argument("--side-by-side", action="store_true", help="pass --side-by-side to migrate-sqlite")
    parser.add_argument("--pgloader-prefetch", type=int, default=10000,
                        help="pgloader's `prefetch rows` (its default exhausts its heap on these files)")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ap-bench-mig-", dir="/tmp"))
    os.chmod(work, 0o755)
    files = opts.keep or work
    files.mkdir(parents=True, exist_ok=True)
    sizes = (int(2_000_000 * opts.scale), int(1_000_000 * opts.scale), int(100_000 * opts.scale))
    home = work / "pg"
    home.mkdir()
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    cluster = LocalCluster(home, extra_settings=("max_wal_size='8GB'", "checkpoint_timeout='30min'",
                                                 "shared_buffers='256MB'", "timezone='UTC'"))
    cluster.up()
    results = {}
    try:
        for variant in [opts.only] if opts.only else VARIANTS:
            path = files / f"legacy-{variant}-{opts.scale:g}.db"
            if not path.exists():
                started = time.monotonic()
                wanted = (*sizes[:2], 0) if variant == "history" else sizes
                counts = generate(path, *wanted, dirty=variant == "dirty")
                print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.monotonic() - started:.0f} s:"
                      f" {counts}", flush=True)
            results[variant] = _compare(cluster, path, work, variant, opts, sizes)
    finally:
        cluster.destroy()
        shutil.rmtree(work, ignore_errors=True)
    text = render(results, sizes, opts.pgloader_prefetch)
    print(f"pgloader: prefetch rows = {opts.pgloader_prefetch}")
    print(text)
    if opts.out:
        opts.out.write_text(text)
    return 0 if all(r["ours"]["returncode"] == 0 for r in results.values()) else 1


def _new_database(cluster: LocalCluster, name: str, schema: bool) -> str:
    """Creates database ``name`` (a constant of this module), with this project's schema if
    ``schema``; returns its URL."""
    admin = psycopg2.connect(**connect_kwargs(cluster.url("postgres")))
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name}")
    admin.close()
    url = cluster.url(name)
    if schema:
        conn = psycopg2.connect(**connect_kwargs(url))
        migrations.migrate(conn)
        conn.close()
    return url


def _compare(cluster: LocalCluster, path: Path, work: Path, variant: str, opts: argparse.Namespace,
             sizes: tuple[int, int, int]) -> dict:
    ours = _new_database(cluster, f"ours_{variant}", schema=True)
    _new_database(cluster, f"pgl_{variant}", schema=False)  # pgloader creates its own tables
    source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    total_rows = sum(source.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
                     for t in ("agents", "agent_heartbeats", "performance_metrics", "llm_conversations", "system_alerts",
                               "help_requests", "shared_state", "agent_messages", "system_config"))
    source.close()
    env = {**os.environ, "AGENTS_PIPELINE_DATABASE_URL": ours, "PYTHONPATH": str(ROOT)}
    print(f"[{variant}] migrating {total_rows} rows with agents-pipeline ...", flush=True)
    mine = measured([sys.executable, "-m", "agents_pipeline.cli.main", "migrate-sqlite", str(path), "--json",
                     *(["--side-by-side"] if opts.side_by_side else [])], env=env)
    report = json.loads(mine["stdout"]) if mine["stdout"].strip().startswith("{") else {}
    print(f"[{variant}] agents-pipeline: {mine['seconds']:.1f} s, peak {mine['peak_mb']:.0f} MiB, "
          f"exit {mine['returncode']} {mine['stderr'][-300:]}", flush=True)
    mine["stdout"] = ""
    result = {"rows": total_rows, "ours": mine, "report": report}
    if variant == "clean" and not opts.skip_floor:
        result["floors"] = {"indexes kept": _floor(cluster, path, deferred=False),
                            "indexes built after the load": _floor(cluster, path, deferred=True)}
    if opts.skip_pgloader:
        return result
    password = (cluster.home / "superuser.password").read_text().strip()
    port = cluster.state()["port"]
    load = work / f"load-{variant}.pgl"
    load.write_text(f"""LOAD DATABASE
     FROM sqlite://{path}
     INTO postgresql://postgres:{password}@127.0.0.1:{port}/pgl_{variant}
 WITH include drop, create tables, create indexes, reset sequences, prefetch rows = {opts.pgloader_prefetch};
""")
    print(f"[{variant}] migrating with pgloader ...", flush=True)
    pgl = measured(["pgloader", str(load)], log=(opts.keep or work) / f"pgloader-{variant}.log",
                   timeout=max(600.0, 10 * mine["seconds"]))
    pgl_url = cluster.url(f"pgl_{variant}")
    pgl["log_errors"] = [line[25:200] for line in pgl["stdout"].splitlines() if " ERROR " in line][:12]
    pgl["stdout"] = ""
    pgl["rows_in_postgres"] = {t: _query(pgl_url, f"SELECT count(*) FROM {t}")[0][0]  # noqa: S608 - fixed names
                               for t in ("agents", "agent_heartbeats", "performance_metrics", "llm_conversations",
                                         "system_alerts")}
    pgl["column_types"] = _query(pgl_url, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                                          "WHERE table_schema = 'public' AND column_name IN ('metric_value', 'cost', "
                                          "'latency_ms', 'timestamp', 'prompt_tokens') ORDER BY 1, 2")
    print(f"[{variant}] pgloader: {pgl['seconds']:.1f} s, peak {pgl['peak_mb']:.0f} MiB, exit {pgl['returncode']}, "
          f"rows {pgl['rows_in_postgres']}", flush=True)
    result["pgloader"] = pgl
    if variant == "dirty":
        result["fates"] = dirt_fates(ours, pgl_url, sizes)
    return result


def _floor(cluster: LocalCluster, path: Path, deferred: bool) -> dict:
    """The plain-COPY baseline into a fresh database with the same schema (clean file only);
    ``deferred``: secondary indexes dropped before the load and built after it, as pgloader does."""
    url = _new_database(cluster, "floor_deferred" if deferred else "floor_clean", schema=True)
    print(f"[clean] plain-COPY baseline{' (indexes built after the load)' if deferred else ''} ...", flush=True)
    run = measured([sys.executable, str(ROOT / "benchmarks" / "migration_floor.py"), str(path), url, "--verify",
                    *(["--deferred-indexes"] if deferred else [])])
    words = run["stdout"].split()
    if run["returncode"] != 0 or "loaded" not in words:
        raise SystemExit(f"the plain-COPY baseline failed: {run['stderr'][-500:]}")
    run["loaded"] = float(words[words.index("loaded") + 1])
    run["verified"] = float(words[words.index("total") + 1])
    print(f"[clean] baseline: loaded {run['loaded']:.1f} s, with verification {run['verified']:.1f} s", flush=True)
    return run


def render(results: dict, sizes: tuple[int, int, int], prefetch: int = 10000) -> str:
    lines = [f"Generated sizes: {sizes[0]:,} heartbeats, {sizes[1]:,} metrics, {sizes[2]:,} conversations "
             "(2-4 KB prompts, 1.5-3 KB responses), 50 agents, 1,000 alerts.", ""]
    lines += ["| file | tool | seconds | rows/s | peak RSS (MiB) | exit | rows in PostgreSQL |",
              "|---|---|---:|---:|---:|---:|---|"]
    for variant, result in results.items():
        mine, rows, report = result["ours"], result["rows"], result.get("report", {})
        totals = report.get("totals", {})
        lines.append(f"| {variant} ({rows:,} rows) | agents-pipeline (verification included) | {mine['seconds']:.1f} | "
                     f"{rows / mine['seconds']:,.0f} | {mine['peak_mb']:.0f} | {mine['returncode']} | "
                     f"{totals.get('written', 0):,} written + {totals.get('rejected', 0):,} rejected with reasons |")
        pgl = result.get("pgloader")
        if pgl:
            kept = sum(pgl["rows_in_postgres"].values())
            status = "hung (no CPU for 60 s), killed" if pgl.get("hung") else pgl["returncode"]
            lines.append(f"| {variant} ({rows:,} rows) | pgloader, prefetch rows = {prefetch} | {pgl['seconds']:.1f} | "
                         f"{rows / pgl['seconds']:,.0f} | {pgl['peak_mb']:.0f} | {status} | "
                         f"{kept:,} ({rows - kept:,} lost) |")
        for how, floor in result.get("floors", {}).items():
            lines.append(f"| {variant} ({rows:,} rows) | baseline: plain COPY, no checks or digests, {how} | "
                         f"{floor['loaded']:.1f} | {rows / floor['loaded']:,.0f} | - | 0 | {rows:,} (clean rows only) |")
            lines.append(f"| {variant} ({rows:,} rows) | the same + the verification's SQL | {floor['verified']:.1f} | "
                         f"{rows / floor['verified']:,.0f} | {floor['peak_mb']:.0f} | 0 | {rows:,} |")
    for variant, result in results.items():
        if result.get("pgloader") and not result["pgloader"].get("hung"):
            ratio = result["pgloader"]["seconds"] / result["ours"]["seconds"]
            lines += ["", f"Ratio on the {variant} file (pgloader seconds / agents-pipeline seconds): **{ratio:.2f}x**"]
            for how, floor in result.get("floors", {}).items():
                lines += ["", f"Baseline ({how}) on the {variant} file: pgloader seconds / plain-COPY seconds "
                              f"{result['pgloader']['seconds'] / floor['loaded']:.2f}x, with the verification's SQL "
                              f"{result['pgloader']['seconds'] / floor['verified']:.2f}x; agents-pipeline seconds / "
                              f"baseline-with-verification seconds {result['ours']['seconds'] / floor['verified']:.2f}"]
    dirty = results.get("dirty", {})
    if dirty.get("fates"):
        lines += ["", "| table | dirty row (3 samples) | pgloader | agents-pipeline |", "|---|---|---|---|"]
        lines += [f"| {t} | {k} | {p} | {o} |" for t, k, p, o in dirty["fates"]]
        pgl = dirty["pgloader"]
        lines += ["", "pgloader column types: " + ", ".join(f"{t}.{c} {d}" for t, c, d in pgl["column_types"]),
                  "", "pgloader errors (first lines of its log):", "", *(f"    {e}" for e in pgl["log_errors"])]
    for variant, result in results.items():
        report = result.get("report", {})
        if report:
            lines += ["", f"agents-pipeline per-table report, {variant} file:", "",
                      "| table | read | written | rejected | seconds | verified |", "|---|---:|---:|---:|---:|---|"]
            lines += [f"| {t['table']} | {t['read']:,} | {t['written']:,} | {t['rejected']:,} | {t['seconds']:.1f} | "
                      f"{t['verified']} |" for t in report.get("tables", [])]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
