"""A/B of two versions of the API server in one run on one cluster, alternating, for changes
whose effect the machine's other work would hide between two separate runs.

    git archive <commit> agents_pipeline | tar -x -C /tmp/base
    .venv/bin/python benchmarks/http_ab.py --base /tmp/base --rounds 3 [--access-log new]

Each round starts the server once per variant (``base``: the package under ``--base`` on
PYTHONPATH; ``new``: the working tree), offers the open loop of benchmarks/http_ingest.py (5,000
pings/s over 500 connections by default) and then a 50-connection closed loop, during which it
reads the server's CPU time (all its processes and threads, /proc/<pid>/stat): CPU per ping
answered is the figure least moved by other work on the machine.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import http_ingest

from agents_pipeline.core.localdb import LocalCluster, scratch_home


def cpu_seconds(pid: int) -> float:
    """User and system CPU of the process and its children (uvicorn's workers)."""
    pids = [pid] + [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    ticks = sum(sum(int(x) for x in Path(f"/proc/{q}/stat").read_text().rsplit(")", 1)[1].split()[11:13])
                for q in pids)
    return ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="a folder holding the base version's agents_pipeline package")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--access-log", choices=("base", "new"), help="run this variant with its access log")
    args = parser.parse_args()
    cluster = LocalCluster(scratch_home("ap-bench-ab-"))
    cluster.up()
    try:
        keys = http_ingest.prepare(cluster)
        keys_dir = Path(tempfile.mkdtemp(prefix="ap-bench-keys-"))
        atexit.register(shutil.rmtree, keys_dir, True)   # the ping keys, gone when the benchmark ends
        keys_file = keys_dir / "keys"
        keys_file.write_text("\n".join(keys))
        for _ in range(args.rounds):
            for variant in ("base", "new"):
                proc, port = http_ingest.start_api(cluster, args.workers, access_log=args.access_log == variant,
                                                   base=args.base if variant == "base" else None)
                try:
                    http_ingest.run_load(port, keys_file, 50, 2)                      # warm-up
                    opened = http_ingest.run_load(port, keys_file, 500, 6, args.rate)
                    before = cpu_seconds(proc.pid)
                    closed = http_ingest.run_load(port, keys_file, 50, 4)
                    used = cpu_seconds(proc.pid) - before
                    # the closed loop runs 1.5 s of warm-up around its 4 measured seconds
                    closed["cpu_us_per_ping"] = round(1e6 * used / max(1, closed["pings_per_s"] * 5.5))
                finally:
                    proc.terminate()
                    proc.wait(15)
                load = Path("/proc/loadavg").read_text().split()[0]
                print(f"{variant:4s} load {load:>5s} open {json.dumps(opened)} closed {json.dumps(closed)}", flush=True)
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
