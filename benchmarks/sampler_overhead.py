"""The sampler's own cost: CPU time per sample for the host plus N agent processes.

Starts N sleeping Python processes, registers them as agents (by pid, and again by
command-line pattern), and measures with ``time.process_time`` around each piece:

* the host reading alone (psutil: /proc/stat, meminfo, diskstats, net/dev, statvfs);
* N agents by pid (one ``oneshot()`` each) and N agents by pattern (one process-table scan);
* the whole in-process sampling step the sensor runs: host + N agents read and derived;
* one complete ``sample_once`` (registry, state lock, insert, thresholds) in the client, and
  the PostgreSQL backend's CPU for the same transaction (from /proc/<backend pid>/stat).

Median and p95 over ``--repeats`` runs; the goal is <= 20 ms for host + 20 agents. A fresh
cluster in a temporary folder is used unless ``--url`` names a database.

With ``--stack-minutes N`` it then measures the whole running stack: a bare ``dagster dev`` serving an empty code location, then the
product's code location with the same agents registered, on one throwaway cluster and one
instance configuration (the project's dagster.yaml), N minutes each.

    nice -n 10 python benchmarks/sampler_overhead.py --agents 20 --repeats 50
    nice -n 10 python benchmarks/sampler_overhead.py --agents 20 --repeats 10 --stack-minutes 10
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import psycopg2
import sqlalchemy as sa

from agents_pipeline.core import migrations
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, scratch_home
from agents_pipeline.core.registry import register_agent
from agents_pipeline.defs.performance.collect import Target, read_agents, read_host
from agents_pipeline.defs.performance.derive import derive
from agents_pipeline.defs.performance.sampler import sample_once

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_ms(fn: Callable[[], object], repeats: int) -> list[float]:
    fn()   # warm imports and caches once, as a long-lived code server would be
    out = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        out.append((time.process_time() - start) * 1000.0)
    return out


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"{statistics.median(ordered):.2f} | {p95:.2f}"


def backend_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


# -- the running stack ---------------------------------------------------------------------------
EMPTY_LOCATION = "import dagster as dg\n\ndefs = dg.Definitions()\n"
ROLES = (("dagster_webserver", "webserver"), ("dagster._daemon", "daemon"), ("code-server", "code server"),
         ("api grpc", "code server"), ("execute_run", "runs"), ("dagster dev", "dagster dev"))


def _role(proc: psutil.Process) -> str:
    cmdline = " ".join(proc.cmdline())
    return next((role for needle, role in ROLES if needle in cmdline), "other")


def _cpu(proc: psutil.Process) -> float:
    """Own CPU plus that of reaped children (runs, exited PostgreSQL backends)."""
    t = proc.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


def _snapshot(session: int, postmaster: int) -> dict[str, float]:
    totals: dict[str, float] = {}
    for proc in psutil.process_iter():
        try:
            if proc.pid == postmaster or proc.ppid() == postmaster:
                totals["postgres"] = totals.get("postgres", 0.0) + _cpu(proc)
            elif os.getsid(proc.pid) == session:
                role = _role(proc)
                totals[role] = totals.get(role, 0.0) + _cpu(proc)
        except (psutil.NoSuchProcess, ProcessLookupError, psutil.AccessDenied):
            continue
    return totals


def _measure(cluster: LocalCluster, workspace: Path, env: dict[str, str], minutes: float, port: int) -> dict[str, float]:
    import urllib.request

    dev = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", str(workspace), "-p", str(port)],
                           env=env, cwd=workspace.parent, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    postmaster = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("dagster dev did not answer within 5 minutes") from None
                time.sleep(2)
        time.sleep(90)     # start-up (imports, first sensor ticks) is not the steady state
        before, t0 = _snapshot(dev.pid, postmaster), time.monotonic()
        time.sleep(minutes * 60)
        after, wall = _snapshot(dev.pid, postmaster), time.monotonic() - t0
        return {role: 100.0 * (after.get(role, 0.0) - before.get(role, 0.0)) / wall for role in after}
    finally:
        os.killpg(dev.pid, 15)
        try:
            dev.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(dev.pid, 9)    # dagster dev can hang on SIGTERM; nothing of it may outlive this
        except ProcessLookupError:
            pass


def stock_storage_yaml(text: str, deploy_text: str) -> str:
    """The same instance configuration with dagster-postgres's own (unpooled) storage class; its
    fields come from the environment as in deploy/dagster.yaml (the project's file has none)."""
    head, rest = text.split("storage:\n", 1)
    _, tail = rest.split("\n\n", 1)
    fields = deploy_text.split("postgres_db:\n", 1)[1].split("\n\n", 1)[0]
    fields = "".join(line[2:] + "\n" for line in fields.splitlines())
    return f"{head}storage:\n  postgres:\n    postgres_db:\n{fields}\n{tail}"


def compare_stacks(cluster: LocalCluster, minutes: float, dagster_yaml: Path | None = None,
                   bare_only: bool = False, stock_minutes: float = 0.0) -> None:
    from agents_pipeline.core import settings
    from agents_pipeline.platform.instance_env import dagster_env, dagster_storage_env

    home = Path(tempfile.mkdtemp(prefix="ap-bench-stack-"))
    shutil.copy(dagster_yaml or settings.PROJECT_DIR / "dagster.yaml", home / "dagster.yaml")
    (home / "empty_location.py").write_text(EMPTY_LOCATION)
    bare_ws = home / "workspace.yaml"
    bare_ws.write_text("load_from:\n  - python_module:\n      module_name: empty_location\n"
                       f"      working_directory: {home}\n      location_name: empty\n")
    env = {**os.environ, **dagster_env(cluster.url()), "DAGSTER_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(settings.PROJECT_DIR), str(home),
                                                       os.environ.get("PYTHONPATH")]))}
    results = {}
    if stock_minutes > 0:
        stock = home / "stock"
        stock.mkdir()
        deploy = (settings.PROJECT_DIR / "deploy" / "dagster.yaml").read_text()
        (stock / "dagster.yaml").write_text(stock_storage_yaml((home / "dagster.yaml").read_text(), deploy))
        results["bare dagster dev, stock dagster-postgres storage (unpooled)"] = _measure(
            cluster, bare_ws, {**env, **dagster_storage_env(cluster.url()), "DAGSTER_HOME": str(stock)},
            stock_minutes, 3150)
    results["bare dagster dev, empty code location"] = _measure(cluster, bare_ws, env, minutes, 3151)
    if not bare_only:
        results["make run stack (agents_pipeline)"] = _measure(
            cluster, settings.PROJECT_DIR / "workspace.yaml", env, minutes, 3152)
    roles = sorted({r for v in results.values() for r in v})
    print(f"\nRunning stack, CPU as % of one core over {minutes:g} min each (same cluster, "
          f"{dagster_yaml or 'the project dagster.yaml'})\n")
    print("| stack | total | " + " | ".join(roles) + " |\n|---|---:|" + "---:|" * len(roles))
    for name, shares in results.items():
        print(f"| {name} | {sum(shares.values()):.2f} | " + " | ".join(f"{shares.get(r, 0.0):.2f}" for r in roles) + " |")
    if not bare_only:
        bare, full = (sum(v.values()) for v in list(results.values())[-2:])
        print(f"\nadded by the product: {full - bare:+.2f} points of one core")
    shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--url", default=None, help="database to use (default: a throwaway cluster)")
    parser.add_argument("--stack-minutes", type=float, default=0.0,
                        help="also measure the running stack against a bare dagster dev, this long each")
    parser.add_argument("--dagster-yaml", type=Path, default=None,
                        help="instance configuration for the stack runs (default: the project's)")
    parser.add_argument("--bare-only", action="store_true", help="measure only the bare floor")
    parser.add_argument("--stock-floor-minutes", type=float, default=0.0,
                        help="also measure the bare floor with dagster-postgres's unpooled storage, this long")
    args = parser.parse_args()

    tag = uuid.uuid4().hex[:8]
    children = [subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(1)", f"bench-{tag}-{i}"])
                for i in range(args.agents)]
    cluster = None
    try:
        url = args.url
        if url is None:
            cluster = LocalCluster(scratch_home("ap-bench-perf-"))
            cluster.up()
            url = cluster.url()
        conn = psycopg2.connect(**connect_kwargs(url))
        migrations.migrate(conn)
        conn.close()
        db = Database(url, maxconn=1)
        for i, child in enumerate(children):
            register_agent(db, f"bench-{tag}-{i}", pid=child.pid)
        db.close()
        time.sleep(0.5)

        by_pid = [Target(i, f"a{i}", pid=c.pid) for i, c in enumerate(children)]
        by_match = [Target(i, f"a{i}", match=f"bench-{tag}-{i}$") for i in range(args.agents)]
        processes = len(psutil.pids())
        now = datetime.now(UTC)
        host0, agents0 = read_host(), read_agents(by_pid)
        state0 = derive(host0, agents0, now, None, None).state

        def full() -> None:
            derive(read_host(), read_agents(by_pid), now + timedelta(seconds=60), now, state0)

        rows = [
            ("host only", cpu_ms(read_host, args.repeats)),
            (f"{args.agents} agents by pid", cpu_ms(lambda: read_agents(by_pid), args.repeats)),
            (f"{args.agents} agents by pattern (scan of {processes} processes)",
             cpu_ms(lambda: read_agents(by_match), args.repeats)),
            (f"host + {args.agents} agents by pid, read and derived (the sampling step)",
             cpu_ms(full, args.repeats)),
        ]

        engine = sa.create_engine(url, pool_size=1)
        client, stored = [], 0
        at = datetime.now(UTC)
        with engine.connect() as c:
            backend_pid = c.execute(sa.text("SELECT pg_backend_pid()")).scalar()
            c.commit()
            with c.begin():     # the baseline sample
                sample_once(c, host="bench", now=at, min_gap_s=0)
            before = c.execute(sa.text("SELECT pg_total_relation_size('fleet.perf_samples') + coalesce(sum("
                                       "pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                                       "WHERE inhparent = 'fleet.perf_samples'::regclass")).scalar()
            c.commit()
            b0 = backend_cpu_s(backend_pid)
            for _ in range(args.repeats):
                at += timedelta(seconds=60)
                p0 = time.process_time()
                with c.begin():
                    result = sample_once(c, host="bench", now=at, min_gap_s=0)
                client.append((time.process_time() - p0) * 1000.0)
                stored = result.rows
            backend_ms = (backend_cpu_s(backend_pid) - b0) * 1000.0 / args.repeats
            after = c.execute(sa.text("SELECT pg_total_relation_size('fleet.perf_samples') + coalesce(sum("
                                      "pg_total_relation_size(inhrelid)), 0) FROM pg_inherits "
                                      "WHERE inhparent = 'fleet.perf_samples'::regclass")).scalar()
            c.commit()
        engine.dispose()
        rows += [(f"sample_once, host + {args.agents} agents: client (Python, incl. SQL round trips)", client),
                 ("sample_once: PostgreSQL backend for the same transaction (mean over the runs)", [backend_ms])]

        print(f"Sampler CPU time per sample, {args.repeats} runs, {os.cpu_count()} cores, "
              f"{processes} processes on the host, psutil {psutil.__version__}\n")
        print("| what | median ms | p95 ms |\n|---|---:|---:|")
        for name, values in rows:
            print(f"| {name} | {summary(values)} |")
        per_sample = (after - before) / args.repeats
        print(f"\nrows stored per sample: {stored}; per day at one sample a minute: {stored * 1440:,} rows, "
              f"about {per_sample * 1440 / 1048576:,.0f} MiB with indexes ({per_sample / stored:.0f} bytes a row)")
        if args.stack_minutes > 0:
            if cluster is None:
                raise SystemExit("--stack-minutes needs the throwaway cluster (leave out --url)")
            compare_stacks(cluster, args.stack_minutes, args.dagster_yaml, args.bare_only, args.stock_floor_minutes)
    finally:
        for child in children:
            child.kill()
            child.wait()
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    main()
