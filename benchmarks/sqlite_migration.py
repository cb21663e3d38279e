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
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import psutil
import psycopg2

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import migration_cluster, settle  # noqa: E402
from legacy_dirty_file import VARIANTS, generate  # noqa: E402
from measured_run import measured  # noqa: E402
from sqlite_migration_report import dirt_fates, query, render  # noqa: E402

from agents_pipeline.core import migrations  # noqa: E402
from agents_pipeline.core.dsn import connect_kwargs  # noqa: E402
from agents_pipeline.core.localdb import LocalCluster  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the full 2M/1M/100k size")
    parser.add_argument("--keep", type=Path, default=None, help="folder to keep (and reuse) the generated files in")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown result here")
    parser.add_argument("--skip-pgloader", action="store_true")
    parser.add_argument("--skip-floor", action="store_true", help="skip the plain-COPY baseline on the clean file")
    parser.add_argument("--only", choices=VARIANTS, default=None, help="run one of the files")
    parser.add_argument("--side-by-side", action="store_true", help="pass --side-by-side to migrate-sqlite")
    parser.add_argument("--cpu-breakdown", action="store_true",
                        help="print CPU-seconds per process kind (ours, the baseline's) and the busy cores per second")
    parser.add_argument("--pgloader-prefetch", type=int, default=10000,
                        help="pgloader's `prefetch rows` (its default exhausts its heap on these files)")
    opts = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="ap-bench-mig-", dir="/tmp"))
    os.chmod(work, 0o755)
    files = opts.keep or work
    files.mkdir(parents=True, exist_ok=True)
    sizes = (int(2_000_000 * opts.scale), int(1_000_000 * opts.scale), int(100_000 * opts.scale))
    cluster = migration_cluster(work)
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
    settle(cluster.url("postgres"))   # before every timed load: none pays for the one before it
    print(f"[{variant}] migrating {total_rows} rows with agents-pipeline ...", flush=True)
    # The dirty file rejects up to a few % of some tables on purpose: accepted, as before the threshold (#22).
    mine = measured([sys.executable, "-m", "agents_pipeline.cli.main", "migrate-sqlite", str(path), "--json",
                     *(["--side-by-side"] if opts.side_by_side else []),
                     *(["--accept-rejects"] if variant == "dirty" else [])], env=env,
                    **_accounting(cluster, opts))
    _print_cpu("agents-pipeline", mine)
    report = json.loads(mine["stdout"]) if mine["stdout"].strip().startswith("{") else {}
    print(f"[{variant}] agents-pipeline: {mine['seconds']:.1f} s, peak {mine['peak_mb']:.0f} MiB, "
          f"exit {mine['returncode']} {mine['stderr'][-300:]}", flush=True)
    mine["stdout"] = ""
    result = {"rows": total_rows, "ours": mine, "report": report}
    if variant == "clean" and not opts.skip_floor:
        result["floors"] = {"indexes kept": _floor(cluster, path, deferred=False, opts=opts),
                            "indexes built after the load": _floor(cluster, path, deferred=True, opts=opts)}
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
    settle(cluster.url("postgres"))
    print(f"[{variant}] migrating with pgloader ...", flush=True)
    pgl = measured(["pgloader", str(load)], log=(opts.keep or work) / f"pgloader-{variant}.log",
                   timeout=max(600.0, 10 * mine["seconds"]))
    pgl_url = cluster.url(f"pgl_{variant}")
    pgl["log_errors"] = [line[25:200] for line in pgl["stdout"].splitlines() if " ERROR " in line][:12]
    pgl["stdout"] = ""
    pgl["rows_in_postgres"] = {t: query(pgl_url, f"SELECT count(*) FROM {t}")[0][0]  # noqa: S608 - fixed names
                               for t in ("agents", "agent_heartbeats", "performance_metrics", "llm_conversations",
                                         "system_alerts")}
    pgl["column_types"] = query(pgl_url, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                                         "WHERE table_schema = 'public' AND column_name IN ('metric_value', 'cost', "
                                         "'latency_ms', 'timestamp', 'prompt_tokens') ORDER BY 1, 2")
    print(f"[{variant}] pgloader: {pgl['seconds']:.1f} s, peak {pgl['peak_mb']:.0f} MiB, exit {pgl['returncode']}, "
          f"rows {pgl['rows_in_postgres']}", flush=True)
    result["pgloader"] = pgl
    if variant == "dirty":
        result["fates"] = dirt_fates(ours, pgl_url, sizes)
    return result


def _floor(cluster: LocalCluster, path: Path, deferred: bool, opts: argparse.Namespace) -> dict:
    """The plain-COPY baseline into a fresh database with the same schema (clean file only);
    ``deferred``: secondary indexes dropped before the load and built after it, as pgloader does."""
    url = _new_database(cluster, "floor_deferred" if deferred else "floor_clean", schema=True)
    settle(cluster.url("postgres"))
    print(f"[clean] plain-COPY baseline{' (indexes built after the load)' if deferred else ''} ...", flush=True)
    run = measured([sys.executable, str(ROOT / "benchmarks" / "migration_floor.py"), str(path), url, "--verify",
                    *(["--deferred-indexes"] if deferred else [])], **_accounting(cluster, opts))
    _print_cpu("baseline" + (" (indexes built after)" if deferred else ""), run)
    words = run["stdout"].split()
    if run["returncode"] != 0 or "loaded" not in words:
        raise SystemExit(f"the plain-COPY baseline failed: {run['stderr'][-500:]}")
    run["loaded"] = float(words[words.index("loaded") + 1])
    run["verified"] = float(words[words.index("total") + 1])
    print(f"[clean] baseline: loaded {run['loaded']:.1f} s, with verification {run['verified']:.1f} s", flush=True)
    return run


def _accounting(cluster: LocalCluster, opts: argparse.Namespace) -> dict:
    """measured()'s CPU accounting arguments, with --cpu-breakdown: the cluster's postmaster and
    a name per process kind."""
    if not opts.cpu_breakdown:
        return {}
    datadir = str(cluster.datadir)
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and datadir in " ".join(proc.info["cmdline"] or []):
            return {"server": proc, "label": _process_kind}
    raise SystemExit(f"--cpu-breakdown: no postmaster found for {datadir}")


def _process_kind(cmdline: list[str]) -> str:
    text = " ".join(cmdline)
    if text.startswith("postgres:"):
        if "parallel worker" in text:
            return "PostgreSQL parallel workers (the verification's scans)"
        backend = not any(w in text for w in ("walwriter", "checkpointer", "background writer", "autovacuum",
                                               "logical replication", "archiver", "stats"))
        return "PostgreSQL backends (COPY, verification)" if backend else "PostgreSQL background processes"
    if "agents_pipeline.defs.migration.parallel" in text:
        args = cmdline[cmdline.index("agents_pipeline.defs.migration.parallel") + 1:] + ["", "0"]
        return f"worker {args[0]}" + ("" if args[1] == "0" else f" part {int(args[1]) + 1}")
    if "--worker" in cmdline:
        return f"baseline worker {cmdline[cmdline.index('--worker') + 1]}"
    return "baseline coordinator" if "migration_floor" in text else "coordinator" if "migrate-sqlite" in text else text[:40]


def _print_cpu(who: str, run: dict) -> None:
    if "cpu" not in run:
        return
    total = sum(run["cpu"].values())
    print(f"  {who}: {total:.1f} CPU-s in {run['seconds']:.1f} s; busy cores per second: "
          + " ".join(f"{b:.2f}" for b in run["busy"]), flush=True)
    for name, seconds in run["cpu"].items():
        print(f"    {seconds:6.2f}  {name}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
