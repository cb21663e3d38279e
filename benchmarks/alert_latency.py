"""Alert latency under the real Dagster daemon: from an agent's deadline plus grace to the webhook.

    nice -n 10 .venv/bin/python benchmarks/alert_latency.py [--agents 10] [--stagger 3]

Starts a throwaway PostgreSQL cluster, `dagster dev` on it (webserver, daemon, the sensors of
this code location, as `make run` does) and a webhook receiver; registers agents with a 10 s
period and 5 s grace, heartbeats each once (staggered, so that they go down in different
evaluations and the fleet-collapse guard stays out of it) and stops. Measured per agent:
the webhook's receipt of the 'opened' alert minus (last heartbeat + period + grace); then, after
one more heartbeat, the receipt of the 'resolved' notice minus that heartbeat, and the downtime
the notice reports. Goal: p95 of the first at most 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg2

from agents_pipeline.core import migrations, registry, settings
from agents_pipeline.core.connection import Database
from agents_pipeline.core.dsn import connect_kwargs
from agents_pipeline.core.localdb import LocalCluster, free_port
from agents_pipeline.core.shared_state import SharedState
from agents_pipeline.platform.instance_env import dagster_env

PERIOD_S, GRACE_S = 10.0, 5.0


def receiver() -> tuple[ThreadingHTTPServer, list[tuple[float, dict]]]:
    received: list[tuple[float, dict]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            received.append((time.time(), body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, received


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def recorded_health(url: str, dagster_home: Path) -> list:
    """The agent_health materializations the sensor reported, read back from the instance."""
    import dagster as dg

    os.environ.update(dagster_env(url))
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        records = instance.fetch_materializations(dg.AssetKey("agent_health"), limit=1000).records
        runs = len(instance.get_run_records())
    print(f"runs launched during the measurement: {runs}")
    return [r.asset_materialization for r in reversed(records)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=10)
    parser.add_argument("--stagger", type=float, default=3.0, help="seconds between the agents' last heartbeats")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="ap-bench-latency-", dir="/tmp"))
    os.chmod(home, 0o755)
    if os.geteuid() == 0:
        shutil.chown(home, "postgres", "postgres")
    cluster = LocalCluster(home / "pg")
    (home / "pg").mkdir()
    if os.geteuid() == 0:
        shutil.chown(home / "pg", "postgres", "postgres")
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    shutil.copy(settings.PROJECT_DIR / "dagster.yaml", dagster_home / "dagster.yaml")
    server, received = receiver()
    proc = None
    try:
        url = cluster.up()
        conn = psycopg2.connect(**connect_kwargs(url))
        migrations.migrate(conn)
        conn.close()
        hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
        env = {**os.environ, **dagster_env(url), "DAGSTER_HOME": str(dagster_home),
               "AGENTS_PIPELINE_ALERT_WEBHOOK_URL": hook, "AGENTS_PIPELINE_ALERT_REMINDER_S": "0",
               "PYTHONPATH": str(settings.PROJECT_DIR)}
        log = open(home / "dagster-dev.log", "w")  # noqa: SIM115 - closed with the process
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dagster", "dev", "-w", str(settings.PROJECT_DIR / "workspace.yaml"),
             "-h", "127.0.0.1", "-p", str(free_port())],
            env=env, cwd=settings.PROJECT_DIR, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
        db = Database(url, maxconn=2)

        def evaluator_running() -> bool:
            return any(a["name"] == "agents-pipeline:health-evaluator" and a["heartbeat_count"] >= 2
                       for a in registry.list_agents(db))

        wait_for(evaluator_running, 300, "the agent_health_sensor's first evaluations")
        print(f"dagster dev up and evaluating after {time.monotonic() - started:.0f} s", flush=True)

        names = [f"latency-{i}" for i in range(args.agents)]
        last_beat: dict[str, float] = {}
        with SharedState(url) as state:
            for name in names:  # registered just before its heartbeat: never "never heard"
                registry.register_agent(db, name, period_s=PERIOD_S, grace_s=GRACE_S)
                received_at = state.heartbeat(name)
                last_beat[name] = received_at.timestamp()
                time.sleep(args.stagger)

            def opened(name: str) -> float | None:
                return next((t for t, b in received if b.get("agent") == name and b["event"] == "opened"), None)

            wait_for(lambda: all(opened(n) for n in names), 120 + args.agents * args.stagger, "every down alert")
            down_latency = [opened(n) - (last_beat[n] + PERIOD_S + GRACE_S) for n in names]

            back: dict[str, float] = {}
            for name in names:
                back[name] = state.heartbeat(name).timestamp()

            def resolved(name: str) -> tuple[float, dict] | None:
                return next(((t, b) for t, b in received if b.get("agent") == name and b["event"] == "resolved"),
                            None)

            wait_for(lambda: all(resolved(n) for n in names), 120, "every resolved notice")
        resolve_latency = [resolved(n)[0] - back[n] for n in names]
        downtime_error = [resolved(n)[1]["duration_s"] - (back[n] - (last_beat[n] + PERIOD_S + GRACE_S))
                          for n in names]
        db.close()
        materializations = recorded_health(url, dagster_home)
        print("down alert latency after deadline + grace (s): "
              + ", ".join(f"{x:.1f}" for x in down_latency), flush=True)
        print(f"down alert latency: median {statistics.median(down_latency):.1f} s, "
              f"p95 {pct(down_latency, 0.95):.1f} s, max {max(down_latency):.1f} s (goal p95 <= 30 s)")
        print(f"resolved notice after the heartbeat: median {statistics.median(resolve_latency):.1f} s, "
              f"max {max(resolve_latency):.1f} s")
        print(f"reported downtime minus true downtime: max |error| {max(abs(e) for e in downtime_error):.3f} s "
              f"(per agent: {', '.join(f'{e:+.3f}' for e in downtime_error)})")
        for name in names:
            body = resolved(name)[1]
            print(f"  {name}: last beat {last_beat[name]:.3f}, back {back[name]:.3f}, opened_at "
                  f"{body.get('opened_at')}, resolved_at {body.get('resolved_at')}, duration_s {body.get('duration_s')}")
        downs = [m.metadata["agents_down"].value for m in materializations]
        print(f"agent_health materializations in the instance: {len(materializations)} (sensor-reported, no runs); "
              f"agents_down over them: {downs[-40:]}")
        print(f"webhook messages received: {len(received)} for {2 * len(names)} expected events: "
              + ", ".join(sorted({f"{b['event']}:{b.get('agent') or b['kind']}" for _, b in received}
                                 - {f"{e}:{n}" for n in names for e in ("opened", "resolved")})) or "no others")
    finally:
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        server.shutdown()
        cluster.destroy()
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
