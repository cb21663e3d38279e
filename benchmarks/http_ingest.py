"""HTTP ping ingest: the agent API against SharedState's direct rate, in one run on one cluster.

    .venv/bin/python benchmarks/http_ingest.py [--seconds 8] [--repeats 3] [--rate 5000] [--workers 1,2]

Measures, on a fresh cluster with PostgreSQL's durable defaults:

- closed loop: as many pings/s as 50, then 500 keep-alive connections can push (each connection
  sends its next ping when the last is answered; 500 agents, heartbeat limits lifted);
- open loop, wrk2-style: a fixed offered rate (5,000 pings/s) spread over 500 connections, each
  ping due at its own time; its latency counts from when it was due, not from when it was sent,
  so a server that falls behind shows its queueing (a closed loop at 500 connections hides it:
  its mean latency is just connections divided by throughput);
- SharedState's direct rate: 50 threads heartbeating through one SharedState (the group-commit
  path agents in Python use), as benchmarks/heartbeat_ingest.py measures it.

Each is measured with the server as one process (`agents-pipeline api`, one core at most: its
event loop and writers share a GIL) and as two (`--workers 2`), a fresh server each round.

The load generator is a separate process on the same machine (asyncio, uvloop, raw keep-alive
HTTP/1.1), so it shares the 2 cores with the server and PostgreSQL. Goals (issue #17): at least
5,000 pings/s and at least 0.5 of the direct rate, both from the same run; p99 <= 50 ms at 5,000
pings/s offered.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psycopg2
from heartbeat_ingest import timed_threads

from agents_pipeline.core import migrations
from agents_pipeline.core.dsn import connect_kwargs, make_url
from agents_pipeline.core.localdb import LocalCluster, free_port, scratch_home
from agents_pipeline.core.roles import roles

AGENTS = 500


# -- load generator (runs in its own process) ---------------------------------------------------
async def _ping(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return int(head[9:12])


async def _connection(port: int, key: str, dues: list[float] | None, stop: float, out: list) -> None:
    """Closed loop when ``dues`` is None; otherwise one ping at each due time (open loop). Each
    ping's (start or due time, answer time, status) goes to ``out``."""
    loop = asyncio.get_running_loop()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    request = f"GET /ping/{key} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    for i in range(len(dues)) if dues is not None else iter(int, 1):
        if dues is None:
            if loop.time() >= stop:
                break
            start = loop.time()
        else:
            start = dues[i]
            if start > loop.time():
                await asyncio.sleep(start - loop.time())
        status = await _ping(reader, writer, request)
        out.append((start, loop.time(), status))
    writer.close()


async def _load(port: int, keys: list[str], conns: int, seconds: float, rate: float | None) -> dict:
    """Throughput: answers within the measured window. Latency: the pings started (closed loop)
    or due (open loop) within it, however late they were answered."""
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.5
    begin, stop = t0 + 1.0, t0 + 1.0 + seconds                      # one second of warm-up
    plans: list[list[float] | None] = [None] * conns
    if rate is not None:
        every = conns / rate
        plans = [[t0 + k / rate + i * every for i in range(int((stop - t0 - k / rate) / every))]
                 for k in range(conns)]
    out: list[tuple[float, float, int]] = []
    await asyncio.gather(*(_connection(port, keys[k % len(keys)], plans[k], stop, out) for k in range(conns)))
    answered = [s for _, done, s in out if begin <= done < stop]
    lat = sorted(done - start for start, done, _ in out if begin <= start < stop)
    statuses: dict[int, int] = {}
    for status in answered:
        statuses[status] = statuses.get(status, 0) + 1

    def pct(q: float) -> float | None:
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 1) if lat else None

    return {"pings_per_s": round(len(answered) / seconds), "statuses": statuses,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": pct(1.0)}


def load_main(args: argparse.Namespace) -> None:
    import uvloop

    keys = Path(args.keys).read_text().split()
    print(json.dumps(uvloop.run(_load(args.port, keys, args.conns, args.seconds, args.rate))))


def run_load(port: int, keys_file: Path, conns: int, seconds: float, rate: float | None = None) -> dict:
    cmd = [sys.executable, __file__, "--load", "--port", str(port), "--keys", str(keys_file),
           "--conns", str(conns), "--seconds", str(seconds)] + (["--rate", str(rate)] if rate else [])
    return json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)


# -- the run -------------------------------------------------------------------------------------
def prepare(cluster: LocalCluster) -> list[str]:
    """Schema, limits lifted, 500 agents for the API and agent-0..49 for SharedState."""
    conn = psycopg2.connect(**connect_kwargs(cluster.url()))
    try:
        migrations.migrate(conn)
        with conn.cursor() as cur:
            cur.execute("""UPDATE fleet.system_config SET value = '{"rate_per_s": 1e9, "burst": 1e9}'
                           WHERE key = 'rate_limit:heartbeats'""")
            cur.execute("INSERT INTO fleet.agents (name) SELECT 'agent-' || n FROM generate_series(0, 49) n")
            cur.execute("INSERT INTO fleet.agents (name) SELECT 'http-' || n FROM generate_series(1, %s) n "
                        "RETURNING ping_key", (AGENTS,))
            keys = [k for (k,) in cur.fetchall()]
            cur.execute("SELECT fleet.ensure_current_partitions()")
        conn.commit()
    finally:
        conn.close()
    return keys


def start_api(cluster: LocalCluster, workers: int = 1, *, base: str | None = None,
              access_log: bool = False) -> tuple[subprocess.Popen, int]:
    """The server on a free port; ``base``: a folder whose agents_pipeline package runs instead
    of the working tree's (benchmarks/http_ab.py)."""
    port = free_port()
    url = make_url("agents_pipeline", user=roles().api, host=str(cluster.sockdir), port=int(cluster.state()["port"]))
    env = {**os.environ, "AGENTS_PIPELINE_API_DATABASE_URL": url, **({"PYTHONPATH": base} if base else {})}
    proc = subprocess.Popen([sys.executable, "-m", "agents_pipeline.cli.main", "api", "--port", str(port),
                             *([] if access_log else ["--no-access-log"]), "--workers", str(workers)],
                            env=env, cwd=tempfile.gettempdir(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return proc, port
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the API server did not start")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=None, help="open-loop offered rate (default 5000)")
    parser.add_argument("--workers", default="1,2", help="server processes to measure, comma-separated")
    parser.add_argument("--load", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    parser.add_argument("--conns", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load_main(args)
        return
    args.rate = args.rate or 5000.0

    cluster = LocalCluster(scratch_home("ap-bench-http-"))
    cluster.up()
    proc = None
    try:
        keys = prepare(cluster)
        keys_dir = Path(tempfile.mkdtemp(prefix="ap-bench-keys-"))
        atexit.register(shutil.rmtree, keys_dir, True)   # the ping keys, gone when the benchmark ends
        keys_file = keys_dir / "keys"
        keys_file.write_text("\n".join(keys))
        series = [int(w) for w in args.workers.split(",")]
        results: dict[str, list] = {"direct 50": []}
        for _ in range(args.repeats):
            for workers in series:
                proc, port = start_api(cluster, workers)
                run_load(port, keys_file, 50, 2)                           # warm the server and its pools
                for label, conns, rate in (("closed 50", 50, None), ("closed 500", 500, None),
                                           ("open", 500, args.rate)):
                    name = f"{label} w{workers}"
                    results.setdefault(name, []).append(run_load(port, keys_file, conns, args.seconds, rate))
                    print(f"{name:14s} {json.dumps(results[name][-1])}", flush=True)
                proc.terminate()
                proc.wait(15)
                proc = None
            results["direct 50"].append({"pings_per_s": round(timed_threads(cluster.url(), 50, args.seconds))})
            print(f"{'direct 50':14s} {json.dumps(results['direct 50'][-1])}", flush=True)
        median = {label: statistics.median(r["pings_per_s"] for r in runs) for label, runs in results.items()}
        print(f"\nmedian pings/s: {json.dumps(median)}")
        for workers in series:
            best = max(median[f"closed 50 w{workers}"], median[f"closed 500 w{workers}"])
            p99 = statistics.median(r["p99_ms"] for r in results[f"open w{workers}"])
            print(f"{workers} worker(s): best closed loop {best:.0f} pings/s (goal >= 5000), "
                  f"{best / median['direct 50']:.2f} of SharedState's direct rate (goal >= 0.5), "
                  f"open-loop p99 at {args.rate:.0f}/s offered {p99} ms (goal <= 50)")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        cluster.destroy()

if __name__ == "__main__":
    main()
